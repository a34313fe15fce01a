// Dead letters: replay one / the selected / all matching (each confirmed with its count), purge all
// matching only after the count is typed. Every change is a POST with the CSRF token.
"use strict";
(function () {
  const L = window.logpipe;
  const bar = document.getElementById("dlq-actions");
  const result = document.getElementById("dlq-result");
  const confirmBox = document.getElementById("confirm");
  const confirmText = document.getElementById("confirm-text");
  const confirmCount = document.getElementById("confirm-count");
  const go = document.getElementById("confirm-go");
  let pending = null;

  const filter = () => ({ stage: bar.dataset.stage, reason: bar.dataset.reason, type: bar.dataset.type });
  function show(text, bad) { result.hidden = false; result.textContent = text; result.classList.toggle("bad", !!bad); }
  function counts(d) { return Object.entries(d).map(([k, v]) => k + "=" + v).join(" "); }

  async function replay(body) {
    const r = await L.post("/api/dlq/replay", body);
    if (!r.ok) { show(r.data.error, true); return; }
    show("replay: " + counts(r.data) + " (reloading)");
    setTimeout(() => window.location.reload(), 1200);
  }
  function ask(text, action, typed) {
    confirmBox.hidden = false;
    confirmText.textContent = text;
    confirmCount.hidden = !typed;
    confirmCount.value = "";
    confirmCount.placeholder = typed ? "type " + typed : "";
    go.disabled = !!typed;
    pending = action;
    if (typed) confirmCount.focus(); else go.focus();
  }
  if (confirmCount) confirmCount.addEventListener("input", () => {
    go.disabled = confirmCount.value.trim() !== confirmCount.placeholder.replace("type ", "");
  });
  if (go) go.addEventListener("click", async () => { confirmBox.hidden = true; const a = pending; pending = null; if (a) await a(confirmCount.value.trim()); });
  const cancel = document.getElementById("confirm-cancel");
  if (cancel) cancel.addEventListener("click", () => { confirmBox.hidden = true; pending = null; });

  for (const b of document.querySelectorAll("button.replay-one")) {
    // the same confirm step as the others: what and how many (one), before anything happens
    b.addEventListener("click", () => ask("Replay 1 dead letter (" + b.dataset.entry + ": " + (b.dataset.reason || "") + ")?", () => replay({ entries: [b.dataset.entry] })));
  }
  const all = document.getElementById("select-all");
  if (all) all.addEventListener("change", () => { for (const c of document.querySelectorAll("input.pick")) c.checked = all.checked; });
  const selected = document.getElementById("replay-selected");
  if (selected) selected.addEventListener("click", () => {
    const entries = Array.from(document.querySelectorAll("input.pick:checked")).map((c) => c.value);
    if (!entries.length) { show("select some letters first", true); return; }
    ask("Replay " + entries.length + " selected dead letter" + (entries.length === 1 ? "" : "s") + "?", () => replay({ entries: entries }));
  });
  async function matching() {
    const p = new URLSearchParams(filter());
    const r = await L.get("/api/dlq/count?" + p.toString());
    if (!r.ok) { show(r.data.error, true); return null; }
    return r.data.count;
  }
  const replayAll = document.getElementById("replay-all");
  if (replayAll) replayAll.addEventListener("click", async () => {
    const n = await matching();
    if (n === null) return;
    ask("Replay " + n + " dead letter" + (n === 1 ? "" : "s") + " matching this filter?", () => replay({ filter: filter() }));
  });
  const purge = document.getElementById("purge-all");
  if (purge) purge.addEventListener("click", async () => {
    const n = await matching();
    if (n === null) return;
    ask("Delete " + n + " dead letter" + (n === 1 ? "" : "s") + " for good? Type the count to confirm:", async (typed) => {
      const r = await L.post("/api/dlq/purge", { filter: filter(), confirm: typed });
      if (!r.ok) { show(r.data.error, true); return; }
      show("purged " + r.data.purged + " (reloading)");
      setTimeout(() => window.location.reload(), 1200);
    }, String(n));
  });
})();
