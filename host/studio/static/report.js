// The report page: the model's own report.md, rendered with marked (vendored). Raw HTML
// inside the Markdown (dataset notes are the artist's free text) is shown as text, and the
// plots are fetched with the session token.
"use strict";
const TOKEN = document.querySelector('meta[name="lanthorn-token"]').content;
const NAME = new URLSearchParams(location.search).get("name") || "";
const base = `/api/report/${encodeURIComponent(NAME)}/`;
const escape = (s) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
marked.use({ renderer: { html(token) { return escape(token.text || token.raw || ""); } } });

(async () => {
  const box = document.getElementById("report");
  const res = await fetch(base + "report.md", { headers: { "X-Lanthorn-Token": TOKEN } });
  if (!res.ok) { box.textContent = `no report for ${NAME} (${res.status})`; return; }
  box.innerHTML = marked.parse(await res.text());
  for (const img of box.querySelectorAll("img")) {
    const src = img.getAttribute("src") || "";
    if (/^[A-Za-z0-9._-]+\.png$/.test(src)) img.src = `${base}${src}?token=${encodeURIComponent(TOKEN)}`;
    else img.remove();
  }
  document.title = `lanthorn studio: ${NAME}`;
})();
