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
}

enhance(document);
document.addEventListener("htmx:after:swap", (event) => {
  const target = event.target instanceof Element ? event.target : document;
  enhance(target.parentElement || document);
});
