// Alerts: acknowledge, mute / unmute, add and delete page rules. Every change is a POST with
// the CSRF token (window.logpipe.post), then the page reloads to show the new state.
"use strict";
(function () {
  const L = window.logpipe;
  const result = document.getElementById("alerts-result");
  function show(text, bad) { result.hidden = false; result.textContent = text; result.classList.toggle("bad", !!bad); }
  async function change(path, body, done) {
    const r = await L.post(path, body);
    if (!r.ok) { show(r.data.error, true); return; }
    show(done + " (reloading)");
    window.location.reload();
  }
  document.querySelectorAll("button.ack").forEach((b) => b.addEventListener("click", () =>
    change("/api/alerts/ack", { rule: b.dataset.rule, key: b.dataset.key }, "acknowledged")));
  document.querySelectorAll("button.mute").forEach((b) => b.addEventListener("click", () =>
    change("/api/alerts/mute", { rule: b.dataset.rule, minutes: 60 }, "muted for an hour")));
  document.querySelectorAll("button.unmute").forEach((b) => b.addEventListener("click", () =>
    change("/api/alerts/mute", { rule: b.dataset.rule, minutes: 0 }, "unmuted")));
  document.querySelectorAll("button.delete-rule").forEach((b) => b.addEventListener("click", () => {
    if (window.confirm("Delete the rule " + b.dataset.rule + "?"))
      change("/api/alerts/rules/delete", { name: b.dataset.rule }, "deleted");
  }));
  const form = document.getElementById("rule-form");
  if (form) form.addEventListener("submit", (e) => {
    e.preventDefault();
    const rule = {};
    new FormData(form).forEach((v, k) => { if (String(v).trim() !== "") rule[k] = String(v).trim(); });
    const kind = rule.kind;
    for (const k of Object.keys(rule)) {
      const keep = { count: ["query", "op", "threshold", "group_by"], silence: ["host"],
                     ratio: ["query", "total_query", "percent"] }[kind];
      if (["query", "op", "threshold", "group_by", "host", "total_query", "percent"].includes(k) && !keep.includes(k)) delete rule[k];
    }
    change("/api/alerts/rules", rule, "saved " + rule.name);
  });
})();
