// Signing with the signer's own key through the local helper "parafe-signer" (127.0.0.1).
// 1. the helper gives the signer's certificate; 2. the portal prepares the documents (server side);
// 3. the helper shows what is signed and asks for confirmation in its own window; 4. the portal embeds the
// signature values and moves the documents on. The private key never leaves the signer's machine.

import { showResults } from "./results.js";

const app = document.getElementById("signer-app");
if (app) {
  const csrf = app.dataset.csrf;
  const ids = app.dataset.ids.split(",").map(Number);
  const portInput = document.getElementById("signer-port");
  const button = document.getElementById("signer-go");
  const status = document.getElementById("signer-status");
  const results = document.getElementById("signer-results");
  const done = document.getElementById("signer-done");
  const saved = window.localStorage.getItem("parafe-signer-port");
  if (saved && portInput) portInput.value = saved;

  const say = (text, kind) => {
    status.textContent = text;
    status.dataset.kind = kind || "";
  };

  async function json(url, options) {
    let response;
    try {
      response = await fetch(url, options);
    } catch (error) {
      throw new Error(options && options.helper
        ? "L'assistant de signature ne répond pas : lancez-le avec « Lancer l'assistant » (et vérifiez le port)."
        : "Le parapheur ne répond pas : vérifiez votre connexion.");
    }
    let body = null;
    try { body = await response.json(); } catch (error) { body = null; }
    if (!response.ok) {
      throw new Error((body && (body.message || body.error)) || `Erreur ${response.status}`);
    }
    return body;
  }

  const portal = (path, payload) => json(path, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(payload),
  });
  const helper = (base, path, payload) => json(base + path, payload === undefined ? { helper: true } : {
    helper: true, method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload),
  });

  // The helper does not answer: offer « Lancer l'assistant » (parafe-signer://start?origin=…, registered by
  // « parafe-signer install ») and wait for it to come up.
  const launch = document.getElementById("signer-launch");
  const launchLink = document.getElementById("signer-launch-link");
  const launchUrl = (port) => `parafe-signer://start?origin=${encodeURIComponent(window.location.origin)}&port=${port}`;
  if (launchLink && portInput) {
    launchLink.href = launchUrl(portInput.value || 36123);
    portInput.addEventListener("change", () => { launchLink.href = launchUrl(portInput.value || 36123); });
  }

  async function connect(base) {
    try {
      return await helper(base, "/v1/certificat");
    } catch (error) {
      if (!launch) throw error;
      launch.hidden = false;
      say("L'assistant de signature ne répond pas : cliquez sur « Lancer l'assistant », puis patientez.");
      const deadline = Date.now() + 120000;
      while (Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        try {
          const info = await helper(base, "/v1/certificat");
          launch.hidden = true;
          return info;
        } catch (again) { /* not started yet */ }
      }
      throw error;
    }
  }

  async function poll(base, job) {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 700));
      const state = await helper(base, `/v1/signatures/${encodeURIComponent(job)}`);
      if (state.status !== "pending") return state;
    }
  }

  let helperWindow = null;
  button.addEventListener("click", async () => {
    const port = Number(portInput.value || 36123);
    window.localStorage.setItem("parafe-signer-port", String(port));
    const base = `http://127.0.0.1:${port}`;
    button.disabled = true;
    // a previous attempt's helper window (cancelled, failed) is closed: the new request opens a fresh one
    if (helperWindow && !helperWindow.closed) helperWindow.close();
    let popup = window.open("about:blank", "parafe-signer", "popup,width=760,height=820");
    helperWindow = popup;
    // once the popup shows the helper's page (another origin), its location can no longer be read: remember it
    let helperShown = false;
    try {
      say("Connexion à l'assistant de signature…");
      const info = await connect(base);
      say(`Certificat : ${info.name}. Préparation des documents…`);
      const prepared = await portal("/signature/preparer", { ids, certificates: info.certificates });
      const job = await helper(base, "/v1/signatures", {
        origin: window.location.origin, signer: prepared.signer, documents: prepared.documents,
      });
      if (popup && !popup.closed) {
        popup.location.href = job.confirm_url;
        helperShown = true;
      } else {
        popup = null;
        const link = document.createElement("a");
        link.href = job.confirm_url;
        link.target = "parafe-signer";
        link.rel = "opener";
        link.textContent = "Ouvrir la fenêtre de confirmation de l'assistant";
        results.replaceChildren(link);
      }
      say("Vérifiez les documents et confirmez la signature dans la fenêtre de l'assistant…");
      const answer = await poll(base, job.job);
      if (answer.status !== "signed") {
        throw new Error(answer.message || "Signature annulée dans l'assistant.");
      }
      say("Enregistrement des signatures…");
      const finished = await portal("/signature/finaliser", { session: prepared.session, signatures: answer.signatures });
      const ok = showResults(results, finished.results);
      say(`${ok} document(s) signé(s) sur ${finished.results.length}.`, ok === finished.results.length ? "ok" : "ko");
      const title = document.getElementById("titre-lot");
      if (title) {
        const left = finished.results.length - ok;
        title.textContent = `${ok} document${ok > 1 ? "s" : ""} signé${ok > 1 ? "s" : ""}`
          + (left ? `, ${left} non signé${left > 1 ? "s" : ""}` : "");
      }
      if (ok === finished.results.length) button.parentElement.hidden = true;  // nothing left to sign here
      done.hidden = false;
    } catch (error) {
      // close the blank popup opened for nothing; the helper's own window (cancelled, failed) is left to the user
      if (popup && !popup.closed && !helperShown) popup.close();
      say(error.message, "ko");
      button.disabled = false;
      button.focus();
    }
  });
}
