// Shared by every page: keyboard shortcuts, the help overlay, helpers. No inline script anywhere
// (the Content-Security-Policy forbids it); all text from the server goes in with textContent.
"use strict";
window.logpipe = (function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  async function post(path, body) {
    const resp = await fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    let data = {};
    try { data = await resp.json(); } catch (e) { data = { error: "HTTP " + resp.status }; }
    return { ok: resp.ok, status: resp.status, data: data };
  }

  async function get(path) {
    const resp = await fetch(path, { credentials: "same-origin" });
    let data = {};
    try { data = await resp.json(); } catch (e) { data = { error: "HTTP " + resp.status }; }
    return { ok: resp.ok, status: resp.status, data: data, headers: resp.headers };
  }

  const help = document.getElementById("help");
  function toggleHelp(show) { help.hidden = show === undefined ? !help.hidden : !show; }
  document.getElementById("help-button").addEventListener("click", () => toggleHelp());
  help.addEventListener("click", (e) => { if (e.target === help) toggleHelp(false); });

  // j/k/o are provided by the page (search) through logpipe.onKey
  const handlers = {};
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    const typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT");
    if (e.key === "Escape") { toggleHelp(false); if (typing) t.blur(); return; }
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "?") { toggleHelp(); e.preventDefault(); return; }
    if (e.key === "/") {
      const q = document.getElementById("q");
      if (q) { q.focus(); q.select(); e.preventDefault(); }
      return;
    }
    if (handlers[e.key]) { handlers[e.key](e); e.preventDefault(); }
  });

  return { el: el, post: post, get: get, csrf: csrf, onKey: (k, fn) => { handlers[k] = fn; } };
})();
