// Passkeys (WebAuthn) in the portal: enrolment on « Mes clés d'accès » and the passkey-confirmed signature on the
// signing page. The key that signs is held by the parapheur; each use needs a fresh assertion of the signer whose
// challenge binds the exact digests being signed (recomputed here from the listed digests before asking).

import { showResults } from "./results.js";

const b64url = {
  encode(buffer) {
    const bytes = new Uint8Array(buffer);
    let text = "";
    for (const b of bytes) text += String.fromCharCode(b);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  },
  decode(text) {
    const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
    const raw = atob(padded);
    const out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i += 1) out[i] = raw.charCodeAt(i);
    return out.buffer;
  },
};

const webauthnMissing = "Ce navigateur ne gère pas les clés d'accès (WebAuthn) : utilisez un navigateur récent.";

async function post(path, csrf, payload) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(payload),
    });
  } catch (error) {
    throw new Error("Le parapheur ne répond pas : vérifiez votre connexion.");
  }
  let body = null;
  try { body = await response.json(); } catch (error) { body = null; }
  if (!response.ok) throw new Error((body && body.message) || `Erreur ${response.status}`);
  return body;
}

function authenticatorError(error) {
  if (error && error.name === "NotAllowedError") return "Opération annulée ou délai dépassé sur la clé d'accès.";
  if (error && error.name === "InvalidStateError") return "Cette clé d'accès est déjà enregistrée pour votre compte.";
  return error && error.message ? error.message : String(error);
}

function say(status, text, kind) {
  status.textContent = text;
  status.dataset.kind = kind || "";
}

// --- enrolment -------------------------------------------------------------------------------------------------
const enrol = document.getElementById("passkey-enrol");
if (enrol) {
  const status = document.getElementById("passkey-enrol-status");
  enrol.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = enrol.querySelector("button[type=submit]");
    if (!window.PublicKeyCredential || !navigator.credentials) { say(status, webauthnMissing, "ko"); return; }
    button.disabled = true;
    try {
      say(status, "Préparation de l'enregistrement…");
      const { options } = await post("/cles-d-acces/options", enrol.dataset.csrf, {});
      const publicKey = {
        ...options,
        challenge: b64url.decode(options.challenge),
        user: { ...options.user, id: b64url.decode(options.user.id) },
        excludeCredentials: (options.excludeCredentials || []).map((c) => ({ ...c, id: b64url.decode(c.id) })),
      };
      say(status, "Confirmez sur votre appareil (empreinte, visage ou code)…");
      let credential;
      try {
        credential = await navigator.credentials.create({ publicKey });
      } catch (error) {
        throw new Error(authenticatorError(error));
      }
      const response = credential.response;
      const saved = await post("/cles-d-acces/enregistrer", enrol.dataset.csrf, {
        name: document.getElementById("passkey-name").value,
        credential: {
          id: credential.id, rawId: b64url.encode(credential.rawId), type: credential.type,
          authenticatorAttachment: credential.authenticatorAttachment || undefined,
          clientExtensionResults: credential.getClientExtensionResults(),
          response: {
            clientDataJSON: b64url.encode(response.clientDataJSON),
            attestationObject: b64url.encode(response.attestationObject),
            transports: response.getTransports ? response.getTransports() : [],
          },
        },
      });
      say(status, `Clé d'accès « ${saved.name} » enregistrée.`, "ok");
      window.location.assign("/cles-d-acces?ok=cle");
    } catch (error) {
      say(status, error.message, "ko");
      button.disabled = false;
    }
  });
}

// --- signature -------------------------------------------------------------------------------------------------
async function bindingChallenge(nonce, documents) {
  let text = `parafe-passkey-signature-v1\n${nonce}\n`;
  for (const doc of documents) text += `${doc.id}:${doc.digests.join(",")}\n`;
  return window.crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
}

const signApp = document.getElementById("passkey-sign");
if (signApp) {
  const csrf = signApp.dataset.csrf;
  const ids = signApp.dataset.ids.split(",").map(Number);
  const button = document.getElementById("passkey-go");
  const status = document.getElementById("passkey-status");
  const results = document.getElementById("passkey-results");
  const done = document.getElementById("passkey-done");

  button.addEventListener("click", async () => {
    if (!window.PublicKeyCredential || !navigator.credentials) { say(status, webauthnMissing, "ko"); return; }
    button.disabled = true;
    try {
      say(status, "Préparation des documents…");
      const prepared = await post("/signature/cle/preparer", csrf, { ids });
      const expected = b64url.encode(await bindingChallenge(prepared.nonce, prepared.documents));
      if (expected !== prepared.challenge || prepared.options.challenge !== expected) {
        throw new Error("La demande de confirmation ne correspond pas aux documents préparés : signature arrêtée.");
      }
      say(status, `Confirmez la signature de ${prepared.documents.length} document(s) sur votre appareil…`);
      const options = prepared.options;
      let assertion;
      try {
        assertion = await navigator.credentials.get({ publicKey: {
          ...options,
          challenge: b64url.decode(options.challenge),
          allowCredentials: (options.allowCredentials || []).map((c) => ({ ...c, id: b64url.decode(c.id) })),
        } });
      } catch (error) {
        throw new Error(authenticatorError(error));
      }
      const response = assertion.response;
      say(status, "Signature des documents…");
      const finished = await post("/signature/cle/finaliser", csrf, {
        session: prepared.session,
        credential: {
          id: assertion.id, rawId: b64url.encode(assertion.rawId), type: assertion.type,
          authenticatorAttachment: assertion.authenticatorAttachment || undefined,
          clientExtensionResults: assertion.getClientExtensionResults(),
          response: {
            clientDataJSON: b64url.encode(response.clientDataJSON),
            authenticatorData: b64url.encode(response.authenticatorData),
            signature: b64url.encode(response.signature),
            userHandle: response.userHandle ? b64url.encode(response.userHandle) : undefined,
          },
        },
      });
      const ok = showResults(results, finished.results);
      say(status, `${ok} document(s) signé(s) sur ${finished.results.length}.`,
        ok === finished.results.length ? "ok" : "ko");
      const title = document.getElementById("titre-lot");  // no longer « N documents à signer »
      if (title) {
        const left = finished.results.length - ok;
        title.textContent = `${ok} document${ok > 1 ? "s" : ""} signé${ok > 1 ? "s" : ""}`
          + (left ? `, ${left} non signé${left > 1 ? "s" : ""}` : "");
      }
      done.hidden = false;
      if (ok === finished.results.length) {
        // nothing left to sign here: the local helper's section would only fail
        const helperSection = document.getElementById("titre-assistant");
        if (helperSection && helperSection.closest("section")) helperSection.closest("section").hidden = true;
      }
    } catch (error) {
      say(status, error.message, "ko");
      button.disabled = false;
    }
  });
}
