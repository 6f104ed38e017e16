// PDF viewer on pdf.js 6 (vendored): one page at a time, keyboard-accessible buttons, zoom.
// pdf.js 6 wants getDocument({url}) (a bare string is refused); no eval, fonts and wasm from our static files.
// Accessibility: the canvas is drawn under pdf.js's text layer (TextLayer API), so the page's text is in the
// DOM (screen readers, selection, search in the page); the scrolling wrapper is a named, focusable region.

const pdfjsCache = new Map();

async function loadPdfjs(lib, worker) {
  if (!pdfjsCache.has(lib)) {
    pdfjsCache.set(lib, import(lib).then((pdfjs) => {
      pdfjs.GlobalWorkerOptions.workerSrc = worker;
      return pdfjs;
    }));
  }
  return pdfjsCache.get(lib);
}

async function setup(el) {
  const status = el.querySelector("[data-pdf-status]");
  const canvas = el.querySelector("[data-pdf-canvas]");
  const textLayer = el.querySelector("[data-pdf-text]");
  const say = (text) => { if (status) status.textContent = text; };
  try {
    const pdfjs = await loadPdfjs(el.dataset.lib, el.dataset.worker);
    const assets = el.dataset.assets;
    const pdf = await pdfjs.getDocument({
      url: el.dataset.pdf,
      withCredentials: true,
      standardFontDataUrl: assets + "standard_fonts/",
      wasmUrl: assets + "wasm/",
      enableXfa: false,
    }).promise;
    let pageNumber = 1;
    let zoom = 1.0;
    let rendering = null;
    const render = async () => {
      if (rendering) await rendering.catch(() => {});
      const page = await pdf.getPage(pageNumber);
      const wrap = el.querySelector(".pdf-canvas-wrap");
      const box = canvas.parentElement;
      const base = page.getViewport({ scale: 1 });
      const fit = Math.max(0.3, (wrap.clientWidth - 4) / base.width);
      const ratio = window.devicePixelRatio || 1;
      const cssViewport = page.getViewport({ scale: fit * zoom });
      const viewport = page.getViewport({ scale: fit * zoom * ratio });
      canvas.width = Math.floor(viewport.width);
      canvas.height = Math.floor(viewport.height);
      canvas.style.width = Math.floor(cssViewport.width) + "px";
      canvas.style.height = Math.floor(cssViewport.height) + "px";
      box.style.width = canvas.style.width;
      box.style.height = canvas.style.height;
      box.style.setProperty("--total-scale-factor", String(cssViewport.scale));
      const task = page.render({ canvas, canvasContext: canvas.getContext("2d"), viewport });
      rendering = task.promise;
      await rendering;
      if (textLayer) {
        // the page's text, transparent over the canvas (pdf.js TextLayer); replaced on each page / zoom
        textLayer.replaceChildren();
        delete el.dataset.text;
        try {
          const layer = new pdfjs.TextLayer({
            textContentSource: page.streamTextContent(), container: textLayer, viewport: cssViewport,
          });
          await layer.render();
          el.dataset.text = String(pageNumber);
        } catch (error) {  // the picture stays; the download links give the text
          el.dataset.textError = String(error && error.message || error);
        }
      }
      say(`Page ${pageNumber} sur ${pdf.numPages}`);
      el.dataset.rendered = String(pageNumber);
      const prev = el.querySelector("[data-pdf-prev]");
      const next = el.querySelector("[data-pdf-next]");
      if (prev) prev.disabled = pageNumber <= 1;
      if (next) next.disabled = pageNumber >= pdf.numPages;
    };
    el.querySelector("[data-pdf-prev]")?.addEventListener("click", () => {
      if (pageNumber > 1) { pageNumber -= 1; render(); }
    });
    el.querySelector("[data-pdf-next]")?.addEventListener("click", () => {
      if (pageNumber < pdf.numPages) { pageNumber += 1; render(); }
    });
    for (const button of el.querySelectorAll("[data-pdf-zoom]")) {
      button.addEventListener("click", () => {
        zoom = Math.min(4, Math.max(0.5, zoom + Number(button.dataset.pdfZoom) * 0.25));
        render();
      });
    }
    let resizeTimer = null;
    const scroller = el.querySelector(".pdf-canvas-wrap");
    let lastWidth = scroller.clientWidth;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        const width = scroller.clientWidth;
        if (width !== lastWidth) {
          lastWidth = width;
          delete el.dataset.rendered;
          render();
        }
      }, 150);
    });
    await render();
  } catch (error) {
    say("Aperçu impossible : téléchargez le document.");
    el.dataset.error = String(error && error.message || error);
  }
}

export function initViewers(root) {
  for (const el of root.querySelectorAll("[data-pdf]")) {
    if (el.dataset.ready) continue;
    el.dataset.ready = "1";
    setup(el);
  }
}
