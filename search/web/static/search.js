// The search page: histogram brushing, top values, expanding rows, keyboard moves, live tail.
"use strict";
(function () {
  const L = window.logpipe;
  const here = new URL(window.location.href);

  function go(changes) {
    const url = new URL(window.location.href);
    url.searchParams.delete("after");
    for (const [k, v] of Object.entries(changes)) {
      if (v === null || v === "") url.searchParams.delete(k); else url.searchParams.set(k, v);
    }
    window.location.assign(url.pathname + url.search);  // a navigation: Back returns here
  }

  // ---- histogram: drag to zoom, click a bar to narrow
  const svg = document.getElementById("histogram");
  if (svg) {
    const start = Date.parse(svg.dataset.start), end = Date.parse(svg.dataset.end);
    const bars = Array.from(svg.querySelectorAll("rect.bar"));
    const first = bars.length ? Date.parse(bars[0].dataset.from) : start;
    const last = bars.length ? Date.parse(bars[bars.length - 1].dataset.to) : end;
    let down = null, brush = null;
    const xOf = (e) => {
      const r = svg.getBoundingClientRect();
      return Math.max(0, Math.min(1, (e.clientX - r.left) / r.width));
    };
    const timeAt = (f) => new Date(first + f * (last - first));
    svg.addEventListener("mousedown", (e) => {
      down = xOf(e);
      brush = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      brush.setAttribute("class", "brush");
      brush.setAttribute("y", "0"); brush.setAttribute("height", "100");
      brush.setAttribute("x", String(down * 1000)); brush.setAttribute("width", "0");
      svg.appendChild(brush);
      e.preventDefault();
    });
    svg.addEventListener("mousemove", (e) => {
      if (down === null) return;
      const x = xOf(e);
      brush.setAttribute("x", String(Math.min(x, down) * 1000));
      brush.setAttribute("width", String(Math.abs(x - down) * 1000));
    });
    const finish = (e) => {
      if (down === null) return;
      const x = xOf(e), a = Math.min(x, down), b = Math.max(x, down);
      const wasDown = down;
      down = null;
      const r = svg.getBoundingClientRect();
      if ((b - a) * r.width < 4) {  // a click: narrow to that bar
        brush.remove();
        const idx = Math.min(bars.length - 1, Math.floor(wasDown * bars.length));
        const bar = bars[idx];
        if (bar) go({ from: bar.dataset.from, to: bar.dataset.to });
        return;
      }
      go({ from: timeAt(a).toISOString(), to: timeAt(b).toISOString() });
    };
    svg.addEventListener("mouseup", finish);
    svg.addEventListener("mouseleave", (e) => { if (down !== null) finish(e); });
  }

  // ---- field sidebar: top values over the whole result, +/- filters
  const params = new URLSearchParams(here.search);
  function queryString(extra) {
    const p = new URLSearchParams();
    for (const k of ["q", "from", "to"]) if (params.get(k)) p.set(k, params.get(k));
    for (const [k, v] of Object.entries(extra)) p.set(k, v);
    return p.toString();
  }
  for (const li of document.querySelectorAll("#fields li.field")) {
    const button = li.querySelector(".field-name");
    const list = li.querySelector("ol.values");
    button.addEventListener("click", async () => {
      if (!list.hidden) { list.hidden = true; return; }
      list.replaceChildren(L.el("li", { class: "dim" }, "counting..."));
      list.hidden = false;
      const r = await L.get("/api/top?" + queryString({ field: li.dataset.field, size: "5" }));
      list.replaceChildren();
      if (!r.ok) { list.appendChild(L.el("li", { class: "bad" }, r.data.error)); return; }
      if (!r.data.values.length) list.appendChild(L.el("li", { class: "dim" }, "no values"));
      for (const v of r.data.values) {
        const item = L.el("li", { class: "top-value" });
        const pct = r.data.total ? " " + (100 * v.count / r.data.total).toFixed(1) + "%" : "";
        item.appendChild(L.el("span", { class: "v", title: v.value }, v.value));
        item.appendChild(L.el("span", { class: "n" }, v.count + pct));
        const link = (q) => { const p = new URLSearchParams(params); p.set("q", q); p.delete("after"); return "/?" + p.toString(); };
        const plus = L.el("a", { class: "plus", title: "filter for this value" }, "+");
        plus.href = link(v.plus);
        const minus = L.el("a", { class: "minus", title: "filter out this value" }, "\u2212");
        minus.href = link(v.minus);
        item.appendChild(plus); item.appendChild(minus);
        list.appendChild(item);
      }
    });
  }

  // ---- rows: expand to all fields + the raw line, surrounding lines
  const table = document.getElementById("hits");
  const columnCount = table ? table.querySelectorAll("thead th").length : 0;
  async function expand(row) {
    const next = row.nextElementSibling;
    if (next && next.classList.contains("detail")) { next.remove(); row.querySelector(".expand").textContent = "\u25B8"; return; }
    row.querySelector(".expand").textContent = "\u25BE";
    const detail = L.el("tr", { class: "detail" });
    const cell = L.el("td", { colspan: String(columnCount) });
    detail.appendChild(cell);
    row.after(detail);
    cell.appendChild(L.el("span", { class: "dim" }, "loading..."));
    const r = await L.get("/api/event/" + encodeURIComponent(row.dataset.id));
    cell.replaceChildren();
    if (!r.ok) { cell.appendChild(L.el("span", { class: "bad" }, r.data.error)); return; }
    // long values come cut (x-logpipe-cut names them): a link fetches the whole value
    const eventPath = "/api/event/" + encodeURIComponent(row.dataset.id);
    const cutHeader = r.headers.get("x-logpipe-cut");
    const cut = cutHeader ? JSON.parse(cutHeader) : { fields: [], omitted_fields: 0 };
    const whole = (k) => {
      const a = L.el("a", { class: "whole", target: "_blank", rel: "noopener" }, "\u2026 whole value");
      a.href = eventPath + "?field=" + encodeURIComponent(k);
      return a;
    };
    const fields = L.el("table", { class: "fields" });
    for (const [k, v] of Object.entries(r.data)) {
      if (k === "message") continue;
      const tr = L.el("tr", { "data-field": k });
      if (v !== null && typeof v !== "object" && !cut.fields.includes(k)) tr.dataset.raw = String(v);
      tr.appendChild(L.el("td", { class: "fname" }, k));
      const td = L.el("td", { class: "fvalue" }, typeof v === "object" && v !== null ? JSON.stringify(v) : v);
      if (cut.fields.includes(k)) td.appendChild(whole(k));
      tr.appendChild(td);
      fields.appendChild(tr);
    }
    if (window.logpipeValues) window.logpipeValues.decorate(fields);
    cell.appendChild(fields);
    if (cut.omitted_fields) {
      const more = L.el("div", { class: "dim" }, cut.omitted_fields + " more fields not shown: ");
      const dl = L.el("a", { download: "" }, "download the whole event");
      dl.href = eventPath + "?download=1";
      more.appendChild(dl);
      cell.appendChild(more);
    }
    cell.appendChild(L.el("div", { class: "label" }, "raw line"));
    cell.appendChild(L.el("pre", { class: "raw" }, r.data.message));
    if (cut.fields.includes("message")) cell.appendChild(whole("message"));
    const around = L.el("button", { type: "button", class: "ghost surround" }, "surrounding lines");
    cell.appendChild(around);
    around.addEventListener("click", async () => {
      around.disabled = true;
      const s = await L.get("/api/surrounding/" + encodeURIComponent(row.dataset.id));
      if (!s.ok) { cell.appendChild(L.el("div", { class: "bad" }, s.data.error)); return; }
      const list = L.el("ol", { class: "surrounding" });
      for (const h of s.data.hits) {
        list.appendChild(L.el("li", { class: h.id === row.dataset.id ? "here mono" : "mono" },
          (h["@timestamp"] || "") + "  " + (h.message || "")));
      }
      cell.appendChild(L.el("div", { class: "label" }, s.data.query));
      cell.appendChild(list);
    });
  }
  if (table) {
    table.addEventListener("click", (e) => {
      const b = e.target.closest("button.expand");
      if (b) { select(b.closest("tr.hit")); expand(b.closest("tr.hit")); }
    });
  }

  // ---- keyboard: j / k move, o expands
  let selected = null;
  function select(row) {
    if (!row) return;
    if (selected) selected.classList.remove("selected");
    selected = row;
    row.classList.add("selected");
    row.scrollIntoView({ block: "nearest" });
  }
  const rows = () => Array.from(document.querySelectorAll("#hits tr.hit"));
  L.onKey("j", () => { const r = rows(); select(selected ? r[Math.min(r.indexOf(selected) + 1, r.length - 1)] : r[0]); });
  L.onKey("k", () => { const r = rows(); select(selected ? r[Math.max(r.indexOf(selected) - 1, 0)] : r[0]); });
  L.onKey("o", () => { if (selected) expand(selected); });

  // ---- live tail: server-sent events of new matches; paused while scrolled down
  const tailButton = document.getElementById("tail");
  const status = document.getElementById("tail-status");
  let source = null, held = [];
  const columns = table ? table.dataset.columns.split(",") : [];
  function addRow(h) {
    const tr = L.el("tr", { class: "hit new", "data-id": h.id });
    const td = L.el("td");
    td.appendChild(L.el("button", { type: "button", class: "expand", "aria-label": "expand" }, "\u25B8"));
    tr.appendChild(td);
    for (const c of columns) {
      let v = h[c];
      if (v === undefined || v === null) v = "";
      if (typeof v === "object") v = Array.isArray(v) ? v.join(", ") : JSON.stringify(v);
      v = String(v);
      const cell = L.el("td", { class: "c-" + c.replace("@", "") });
      if (c === "qid" && v) {
        const a = L.el("a", { class: "qid" }, v); a.href = "/trace/" + encodeURIComponent(v); cell.appendChild(a);
      } else {
        cell.textContent = v.length > 300 ? v.slice(0, 300) + "\u2026" : v;
      }
      tr.appendChild(cell);
    }
    table.tBodies[0].prepend(tr);
  }
  function paused() { return window.scrollY > 40; }
  function flush() {
    if (paused()) { status.textContent = held.length ? held.length + " new (paused while scrolled; scroll to the top)" : "paused while scrolled"; return; }
    for (const h of held) addRow(h);
    held = [];
    status.textContent = "following new matches";
  }
  window.addEventListener("scroll", () => { if (source) flush(); });
  if (tailButton) {
    tailButton.addEventListener("click", () => {
      if (source) { source.close(); source = null; tailButton.textContent = "Live tail"; status.textContent = ""; return; }
      source = new EventSource("/api/tail?" + queryString({}));
      tailButton.textContent = "Stop tail";
      // "following" only once the server answered: it has fixed where the tail starts, so
      // whatever is stored from now on is sent (a line stored before that is on the page)
      status.textContent = "connecting\u2026";
      source.onopen = () => flush();
      source.onmessage = (e) => { held.push(JSON.parse(e.data)); flush(); };
      source.addEventListener("problem", (e) => { status.textContent = JSON.parse(e.data).error; });
    });
  }
})();
