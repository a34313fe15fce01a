// Time on every page (base.html loads it): the viewer's zone (or UTC, remembered by this
// browser), every <time class="t"> shown in it; on the search page also the histogram's axis,
// the time picker and auto-refresh.
// The server speaks ISO UTC only; what a person reads is made here.
"use strict";
window.logpipeTime = (function () {
  const KEY = "logpipe.zone";
  let utc = false;
  try { utc = window.localStorage.getItem(KEY) === "utc"; } catch (e) { utc = false; }
  const localName = (Intl.DateTimeFormat().resolvedOptions().timeZone || "local");
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const pad = (n, w) => String(n).padStart(w || 2, "0");

  // calendar fields of a moment in the chosen zone, and the moment of such fields
  function parts(ms) {
    const d = new Date(ms);
    return utc
      ? { y: d.getUTCFullYear(), mo: d.getUTCMonth(), d: d.getUTCDate(), h: d.getUTCHours(), mi: d.getUTCMinutes(), s: d.getUTCSeconds(), ms: d.getUTCMilliseconds() }
      : { y: d.getFullYear(), mo: d.getMonth(), d: d.getDate(), h: d.getHours(), mi: d.getMinutes(), s: d.getSeconds(), ms: d.getMilliseconds() };
  }
  function make(p) {
    if (utc) return Date.UTC(p.y, p.mo, p.d, p.h, p.mi, p.s, p.ms || 0);
    const d = new Date(p.y, p.mo, p.d, p.h, p.mi, p.s, p.ms || 0);
    if (p.y < 100) d.setFullYear(p.y);
    return d.getTime();
  }
  function zoneName() { return utc ? "UTC" : localName; }

  // "2013-05-15 02:00:03" (".123" when there are milliseconds) in the chosen zone
  function format(ms) {
    const p = parts(ms);
    return p.y + "-" + pad(p.mo + 1) + "-" + pad(p.d) + " " + pad(p.h) + ":" + pad(p.mi) + ":" + pad(p.s) +
      (p.ms ? "." + pad(p.ms, 3) : "");
  }
  // the value of an <input type=datetime-local> for a moment, and back
  function toInput(ms) {
    const p = parts(ms);
    return pad(p.y, 4) + "-" + pad(p.mo + 1) + "-" + pad(p.d) + "T" + pad(p.h) + ":" + pad(p.mi) + (p.s ? ":" + pad(p.s) : "");
  }
  function fromInput(text) {
    const m = /^(\d{4,})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?$/.exec(text || "");
    if (!m) return null;
    return make({ y: +m[1], mo: +m[2] - 1, d: +m[3], h: +m[4], mi: +m[5], s: +(m[6] || 0), ms: +((m[7] || "0") + "00").slice(0, 3) });
  }
  // a time field's value: ISO text, or epoch seconds (received_at)
  function parse(value) {
    if (typeof value === "number") return value * 1000;
    if (typeof value === "string" && /^\d{4}-\d\d-\d\dT/.test(value)) { const t = Date.parse(value); return isNaN(t) ? null : t; }
    if (typeof value === "string" && /^\d{9,11}(\.\d+)?$/.test(value)) return parseFloat(value) * 1000;
    return null;
  }

  function renderAll(root) {
    for (const t of (root || document).querySelectorAll("time.t")) {
      const ms = Date.parse(t.getAttribute("datetime"));
      if (isNaN(ms)) continue;
      t.textContent = format(ms);
      t.title = t.getAttribute("datetime") + " (UTC)";
    }
    for (const z of document.querySelectorAll(".zone-name")) z.textContent = zoneName();
    for (const r of document.querySelectorAll("#histogram rect.bar title")) {
      const rect = r.parentNode;
      r.textContent = format(Date.parse(rect.dataset.from)) + ": " + rect.dataset.count;
    }
    drawAxis();
  }

  // ---- the histogram's axis: ticks at a round step of the zone's calendar, about one per
  // 90 pixels, labelled as precisely as the step needs (seconds ... years)
  const STEPS = [[1, "s"], [2, "s"], [5, "s"], [10, "s"], [15, "s"], [30, "s"],
    [1, "mi"], [2, "mi"], [5, "mi"], [10, "mi"], [15, "mi"], [30, "mi"],
    [1, "h"], [2, "h"], [3, "h"], [6, "h"], [12, "h"], [1, "d"], [2, "d"], [7, "d"], [14, "d"],
    [1, "mo"], [2, "mo"], [3, "mo"], [6, "mo"], [1, "y"], [2, "y"], [5, "y"], [10, "y"], [20, "y"],
    [50, "y"], [100, "y"], [250, "y"], [500, "y"], [1000, "y"], [2500, "y"]];
  const UNIT_MS = { s: 1e3, mi: 6e4, h: 36e5, d: 864e5, mo: 2629746e3, y: 31556952e3 };
  const ORDER = ["y", "mo", "d", "h", "mi", "s", "ms"];
  function floorTo(ms, n, unit) {
    const p = parts(ms);
    for (const u of ORDER.slice(ORDER.indexOf(unit) + 1)) p[u] = (u === "d") ? 1 : 0;
    if (unit === "d" && n === 7) { // weeks start on Monday
      const weekday = utc ? new Date(ms).getUTCDay() : new Date(ms).getDay();
      p.d -= (weekday + 6) % 7;
    } else if (unit === "d") p.d = 1 + Math.floor((p.d - 1) / n) * n;
    else p[unit] = Math.floor(p[unit] / n) * n;
    return p;
  }
  function ticks(start, end, wanted) {
    let step = STEPS[STEPS.length - 1];
    for (const s of STEPS) { if ((end - start) / (s[0] * UNIT_MS[s[1]]) <= wanted) { step = s; break; } }
    const [n, unit] = step;
    const out = [];
    let p = floorTo(start, n, unit);
    for (let i = 0; i < 200; i++) {
      const t = make(p);
      if (t > end) break;
      if (t >= start) out.push(t);
      p = Object.assign({}, p);
      p[unit] += n;
    }
    return { unit: unit, n: n, ticks: out };
  }
  function label(t, unit, prev) {
    const p = parts(t), q = prev === null ? null : parts(prev);
    const day = MONTHS[p.mo] + " " + p.d;
    const newDay = !q || q.y !== p.y || q.mo !== p.mo || q.d !== p.d;
    const newYear = !q || q.y !== p.y;
    if (unit === "y") return String(p.y);
    if (unit === "mo") return newYear ? MONTHS[p.mo] + " " + p.y : MONTHS[p.mo];
    if (unit === "d") return newYear ? day + ", " + p.y : day;
    const hm = pad(p.h) + ":" + pad(p.mi) + (unit === "s" ? ":" + pad(p.s) : "");
    return newDay ? (newYear && q ? day + ", " + p.y : day) + " " + hm : hm;
  }
  function drawAxis() {
    const svg = document.getElementById("histogram");
    const axis = document.getElementById("axis");
    if (!svg || !axis) return;
    const bars = svg.querySelectorAll("rect.bar");
    if (!bars.length) return;
    const first = Date.parse(bars[0].dataset.from), last = Date.parse(bars[bars.length - 1].dataset.to);
    if (!(last > first)) return;
    const width = axis.getBoundingClientRect().width || 1000;
    const found = ticks(first, last, Math.max(2, Math.floor(width / 110)));
    axis.replaceChildren();
    let prev = null;
    for (const t of found.ticks) {
      const tick = window.logpipe.el("span", { class: "tick", "data-time": new Date(t).toISOString() }, label(t, found.unit, prev));
      tick.style.left = (100 * (t - first) / (last - first)) + "%";   // CSSOM: allowed by the CSP
      axis.appendChild(tick);
      prev = t;
    }
    axis.dataset.unit = found.n + found.unit;
  }

  function setUtc(on) {
    utc = !!on;
    try { window.localStorage.setItem(KEY, utc ? "utc" : "local"); } catch (e) { /* private mode */ }
    renderAll();
    fillPicker();
  }

  // ---- picker: relative (now-N), absolute (calendar, in the chosen zone), end now
  function go(changes) {
    const url = new URL(window.location.href);
    url.searchParams.delete("after");
    for (const [k, v] of Object.entries(changes)) {
      if (v === null || v === "") url.searchParams.delete(k); else url.searchParams.set(k, v);
    }
    window.location.assign(url.pathname + url.search);
  }
  function fillPicker() {
    const params = new URL(window.location.href).searchParams;
    for (const [key, id] of [["from", "abs-from"], ["to", "abs-to"]]) {
      const input = document.getElementById(id);
      if (!input) continue;
      const text = params.get(key) || "";
      let ms = /^\d{4}-/.test(text) ? Date.parse(text.endsWith("Z") || /[+-]\d\d:?\d\d$/.test(text) || !text.includes("T") ? text : text + "Z") : NaN;
      if (isNaN(ms)) { // a relative or empty bound: offer the window the histogram shows
        const svg = document.getElementById("histogram");
        ms = svg ? Date.parse(svg.dataset[key === "from" ? "start" : "end"]) : NaN;
      }
      input.value = isNaN(ms) ? "" : toInput(ms);
    }
    const m = /^now-(\d+)([mhd])$/.exec(params.get("from") || "");
    if (m && !params.get("to") && document.getElementById("rel-n")) {   // the search page's picker
      document.getElementById("rel-n").value = m[1];
      document.getElementById("rel-unit").value = m[2];
    }
  }
  function wire() {
    const on = (id, ev, fn) => { const n = document.getElementById(id); if (n) n.addEventListener(ev, fn); };
    on("rel-apply", "click", () => {
      const n = parseInt(document.getElementById("rel-n").value, 10);
      if (!(n > 0)) return;
      go({ from: "now-" + n + document.getElementById("rel-unit").value, to: "" });
    });
    on("abs-apply", "click", () => {
      const a = fromInput(document.getElementById("abs-from").value);
      const b = fromInput(document.getElementById("abs-to").value);
      go({ from: a === null ? "" : new Date(a).toISOString(), to: b === null ? "" : new Date(b).toISOString() });
    });
    on("to-now", "click", () => go({ to: "" }));
    on("tz-switch", "click", () => setUtc(!utc));
    on("refresh", "change", (e) => go({ refresh: e.target.value }));
    window.addEventListener("resize", drawAxis);
    // auto-refresh: the same URL again after the chosen pause, unless a row is open or the
    // live tail is running (the page would lose them)
    const every = { "10s": 10e3, "1m": 60e3, "5m": 300e3 }[new URL(window.location.href).searchParams.get("refresh") || ""];
    if (every) {
      window.setTimeout(function again() {
        const busy = document.querySelector("#hits tr.detail") || document.getElementById("tail")?.textContent === "Stop tail";
        if (busy) { window.setTimeout(again, every); return; }
        window.location.reload();
      }, every);
    }
  }
  wire();
  renderAll();
  fillPicker();
  return { format: format, parse: parse, render: renderAll, utc: () => utc, setUtc: setUtc, ticks: ticks };
})();
