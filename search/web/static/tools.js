// The search page's tools: filter for / filter out / exists on every value (table cells, an
// expanded row's fields, the field list), saved searches, and the export of a whole result.
// Text from the store goes in with textContent only; the query is built as the server's
// data.refine builds it.
"use strict";
window.logpipeValues = (function () {
  const L = window.logpipe;
  const T = window.logpipeTime;
  const TIME_FIELDS = ["@timestamp", "received_at"];

  function phrase(v) { return '"' + String(v).replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '"'; }
  function refine(q, term, keep) {
    const base = (q || "").trim();
    if (base === "" || base === "*") return keep ? term : "* AND NOT " + term;
    return "(" + base + ") AND " + (keep ? "" : "NOT ") + term;
  }
  function linkFor(q) {
    const url = new URL(window.location.href);
    url.searchParams.set("q", q);
    url.searchParams.delete("after");
    return url.pathname + url.search;
  }
  const current = () => new URL(window.location.href).searchParams.get("q") || "";

  // three links after a value: + (only events with it), - (none with it), exists (the field)
  function actions(field, value) {
    const box = L.el("span", { class: "acts" });
    const add = (cls, title, text, q) => {
      const a = L.el("a", { class: cls, title: title }, text);
      a.href = linkFor(q);
      box.appendChild(a);
    };
    if (value !== null && value !== undefined && value !== "") {
      const term = field + ":" + phrase(value);
      add("plus", "filter for this value", "+", refine(current(), term, true));
      add("minus", "filter out this value", "\u2212", refine(current(), term, false));
    }
    add("exists", "filter for events that have " + field, "exists", refine(current(), "_exists_:" + field, true));
    return box;
  }

  // the table's cells (data-whole: the cell holds its whole value, not cut)
  const table = document.getElementById("hits");
  if (table) {
    const columns = table.dataset.columns.split(",");
    for (const row of table.querySelectorAll("tr.hit")) {
      const cells = row.querySelectorAll("td");
      columns.forEach((c, i) => {
        const td = cells[i + 1];
        // a time cell carries its stored value; any other whole value is the cell's text
        if (td && td.hasAttribute("data-v")) td.appendChild(actions(c, td.getAttribute("data-v")));
        else if (td && td.hasAttribute("data-whole")) td.appendChild(actions(c, td.textContent));
      });
    }
  }
  // the field list: exists on each field
  for (const li of document.querySelectorAll("#fields li.field")) {
    const a = li.querySelector("a.exists");
    if (a) a.href = linkFor(refine(current(), "_exists_:" + li.dataset.field, true));
  }

  // an expanded row's field table (search.js builds it): times read as times, actions on each
  function decorate(fieldsTable) {
    for (const tr of fieldsTable.querySelectorAll("tr")) {
      const name = tr.dataset.field, raw = tr.dataset.raw;
      const td = tr.querySelector("td.fvalue");
      if (!name || !td) continue;
      if (TIME_FIELDS.includes(name) || /(_at|_time|timestamp)$/.test(name)) {
        const ms = T.parse(raw !== undefined && /^\d+(\.\d+)?$/.test(raw) ? parseFloat(raw) : raw);
        if (ms !== null) {
          const t = L.el("time", { class: "t", datetime: new Date(ms).toISOString() });
          td.replaceChildren(t);
          td.appendChild(L.el("span", { class: "dim raw-time" }, " (" + raw + ")"));
          T.render(td);
        }
      }
      td.appendChild(actions(name, raw));
    }
  }

  // ---- saved searches (stored by the server: POSTs carry the CSRF token)
  const list = document.getElementById("saved-list");
  const status = document.getElementById("saved-status");
  function savedUrl(s) {
    const p = new URLSearchParams();
    if (s.q) p.set("q", s.q);
    if (s.from) p.set("from", s.from);
    if (s.to) p.set("to", s.to);
    if (s.columns && s.columns.length) p.set("columns", s.columns.join(","));
    if (s.sort === "asc") p.set("sort", "asc");
    const text = p.toString();
    return "/" + (text ? "?" + text : "");
  }
  function say(text, bad) { status.textContent = text; status.className = bad ? "bad" : "dim"; }
  async function refresh() {
    const r = await L.get("/api/saved");
    if (!r.ok) { say(r.data.error, true); return; }
    list.replaceChildren();
    if (!r.data.searches.length) list.appendChild(L.el("li", { class: "dim none" }, "none saved yet"));
    for (const s of r.data.searches) {
      const li = L.el("li", { class: "saved-item", "data-name": s.name });
      const a = L.el("a", { class: "saved-link" }, s.name);
      a.href = savedUrl(s);
      li.appendChild(a);
      li.appendChild(L.el("span", { class: "dim mono saved-q" }, (s.q || "*") + (s.from ? "  from " + s.from : "") + (s.to ? " to " + s.to : "")));
      const rename = L.el("button", { type: "button", class: "ghost rename" }, "rename");
      const del = L.el("button", { type: "button", class: "ghost delete" }, "delete");
      rename.addEventListener("click", () => {
        const input = L.el("input", { class: "rename-input", maxlength: "120" });
        input.value = s.name;
        const ok = L.el("button", { type: "button", class: "rename-ok" }, "OK");
        ok.addEventListener("click", async () => {
          const r2 = await L.post("/api/saved/rename", { name: s.name, new_name: input.value });
          if (!r2.ok) { say(r2.data.error, true); return; }
          say("renamed to " + r2.data.name);
          refresh();
        });
        li.replaceChildren(input, ok);
        input.focus();
      });
      del.addEventListener("click", async () => {
        if (!del.classList.contains("armed")) { del.classList.add("armed"); del.textContent = "really delete"; return; }
        const r2 = await L.post("/api/saved/delete", { name: s.name });
        if (!r2.ok) { say(r2.data.error, true); return; }
        say("deleted " + s.name);
        refresh();
      });
      li.appendChild(rename);
      li.appendChild(del);
      list.appendChild(li);
    }
  }
  const saveButton = document.getElementById("save-search");
  if (saveButton) {
    document.getElementById("saved").addEventListener("toggle", (e) => { if (e.target.open) refresh(); }, { once: true });
    saveButton.addEventListener("click", async () => {
      const p = new URL(window.location.href).searchParams;
      const name = document.getElementById("save-name").value;
      const r = await L.post("/api/saved", {
        name: name, q: p.get("q") || "", from: p.get("from") || "", to: p.get("to") || "",
        columns: p.get("columns") || "", sort: p.get("sort") === "asc" ? "asc" : "desc",
        replace: document.getElementById("save-replace").checked,
      });
      if (!r.ok) { say(r.data.error, true); return; }
      say("saved as " + r.data.name);
      document.getElementById("save-name").value = "";
      refresh();
    });
  }

  // ---- export: the whole result streamed in, with progress and cancel, then saved as a file
  const progress = document.getElementById("export-progress");
  const exportStatus = document.getElementById("export-status");
  const cancel = document.getElementById("export-cancel");
  let running = null;
  async function exportAs(button, ext) {
    if (running) return;
    const controller = new AbortController();
    running = controller;
    const buttons = [document.getElementById("export-csv"), document.getElementById("export-ndjson")];
    buttons.forEach((b) => { b.disabled = true; });
    cancel.hidden = false;
    progress.hidden = false;
    progress.value = 0;
    exportStatus.textContent = "exporting\u2026";
    const parts = [];
    let lines = 0;
    try {
      const resp = await fetch(button.dataset.href, { credentials: "same-origin", signal: controller.signal });
      if (!resp.ok) {
        let msg = "HTTP " + resp.status;
        try { msg = (await resp.json()).error || msg; } catch (e) { /* not JSON */ }
        throw new Error(msg);
      }
      const total = parseInt(resp.headers.get("x-logpipe-total") || "0", 10);
      progress.max = Math.max(total, 1);
      const reader = resp.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parts.push(value);
        for (let i = 0; i < value.length; i++) if (value[i] === 10) lines++;
        const events = ext === "csv" ? Math.max(0, lines - 1) : lines;
        progress.value = Math.min(events, progress.max);
        exportStatus.textContent = events.toLocaleString() + " of " + total.toLocaleString() + " events";
      }
      const events = ext === "csv" ? Math.max(0, lines - 1) : lines;
      const blob = new Blob(parts, { type: ext === "csv" ? "text/csv" : "application/x-ndjson" });
      const a = L.el("a", { download: "logpipe-export." + ext });
      a.href = URL.createObjectURL(blob);
      document.body.appendChild(a);
      a.click();
      a.remove();
      window.setTimeout(() => URL.revokeObjectURL(a.href), 60000);
      exportStatus.textContent = "exported " + events.toLocaleString() + " events";
      exportStatus.className = "done";
    } catch (e) {
      exportStatus.textContent = controller.signal.aborted ? "export cancelled" : "export failed: " + e.message;
      exportStatus.className = controller.signal.aborted ? "dim cancelled" : "bad";
    } finally {
      running = null;
      buttons.forEach((b) => { b.disabled = false; });
      cancel.hidden = true;
      progress.hidden = true;
    }
  }
  if (cancel) {
    cancel.addEventListener("click", () => { if (running) running.abort(); });
    document.getElementById("export-csv").addEventListener("click", (e) => exportAs(e.currentTarget, "csv"));
    document.getElementById("export-ndjson").addEventListener("click", (e) => exportAs(e.currentTarget, "ndjson"));
  }

  return { decorate: decorate, refine: refine, phrase: phrase };
})();
