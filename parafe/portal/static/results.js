// The list shown after a signature (own key through parafe-signer, or passkey): one line per document, linked to
// its page, « signé » or why not. Shared by signer.js and passkeys.js.

export function showResults(results, list) {
  results.replaceChildren();
  let ok = 0;
  for (const item of list) {
    const li = document.createElement("li");
    li.className = item.ok ? "result-ok" : "result-ko";
    const link = document.createElement("a");
    link.href = `/documents/${item.id}`;
    link.textContent = item.name;
    li.append(link, document.createTextNode(item.ok ? " : signé." : ` : non signé — ${item.message}`));
    results.append(li);
    if (item.ok) ok += 1;
  }
  return ok;
}
