// Parafe portal: small progressive enhancements (the pages work without JavaScript).
// No inline script anywhere: the Content-Security-Policy only allows the portal's own files.

async function enhance(root) {
  if (root.querySelector("[data-pdf]")) {
    const { initViewers } = await import("./viewer.js");
    initViewers(root);
  }
  const circuit = root.querySelector("#d-circuit");
  const otp = root.querySelector("#d-otp");
  if (circuit && otp) {
    const sync = () => {
      const option = circuit.selectedOptions[0];
      otp.hidden = !option || option.dataset.otp === "0";
    };
    circuit.addEventListener("change", sync);
    sync();
  }
  // admin circuit form: the PES options only for the PES (Hélios) types
  const type = root.querySelector("#c-type");
  const pes = root.querySelector("#c-pes-options");
  if (type && pes) {
    const types = (pes.dataset.pesTypes || "").split(" ");
    const syncPes = () => { pes.hidden = !types.includes(type.value); };
    type.addEventListener("change", syncPes);
    syncPes();
  }
}

// Form errors: the focus moves to the error summary; its links move the focus to the field they name.
function focusErrors() {
  const summary = document.querySelector("[data-error-summary]");
  if (!summary) return;
  for (const link of summary.querySelectorAll("[data-error-link]")) {
    link.addEventListener("click", (event) => {
      const field = document.getElementById(link.getAttribute("href").slice(1));
      if (!field) return;
      event.preventDefault();
      const disclosure = field.closest("details");
      if (disclosure) disclosure.open = true;
      field.focus();
      field.scrollIntoView({ block: "center" });
    });
  }
  summary.focus();
}

// After an htmx search, the result count (a live region outside the swapped list, so that screen readers
// announce its change) and the page title follow the new list.
function listSwapped() {
  const list = document.getElementById("liste");
  const count = document.getElementById("result-count");
  if (list && count && list.dataset.count && count.textContent !== list.dataset.count) {
    count.textContent = list.dataset.count;
  }
  if (list && list.dataset.title) document.title = list.dataset.title;
}

enhance(document);
focusErrors();
document.addEventListener("htmx:after:swap", (event) => {
  const target = event.target instanceof Element ? event.target : document;
  enhance(target.parentElement || document);
  listSwapped();
});
