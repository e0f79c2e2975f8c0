// Settings and the admin pages: small enhancements only; every form works
// without script.
// - [data-copy="ID"] buttons copy the text of element ID (a sign-in link
//   or an API token shown once).
// - The Broadcasts form: "All customers" and "Customer ids" exclude each
//   other, so checking the box disables the field.
// - A broadcast's page ([data-broadcast] with data-status="sending")
//   polls GET /api/broadcasts/{id} every 2 s and updates the counts and
//   each recipient's outcome in place (textContent only), until nothing
//   is pending.
"use strict";

document.addEventListener("click", (ev) => {
  const btn = ev.target instanceof Element ? ev.target.closest("button[data-copy]") : null;
  if (!btn) return;
  const target = document.getElementById(btn.dataset.copy);
  if (!target || !navigator.clipboard) return;
  navigator.clipboard.writeText(target.textContent.trim()).then(
    () => { btn.textContent = "Copied"; },
    () => { btn.textContent = "Copy failed"; },
  );
});

(function recipientsChoice() {
  const all = document.getElementById("bc-all");
  const ids = document.getElementById("bc-ids");
  if (!all || !ids) return;
  const sync = () => { ids.disabled = all.checked; };
  all.addEventListener("change", sync);
  sync();
})();

(function broadcastProgress() {
  const root = document.querySelector("[data-broadcast]");
  if (!root || root.dataset.status !== "sending") return;
  const id = root.dataset.broadcast;
  const state = document.getElementById("bc-state");
  let failures = 0;

  function setText(sel, text) {
    const e = root.querySelector(sel);
    if (e && e.textContent !== String(text)) e.textContent = String(text);
  }

  function update(b) {
    setText('[data-count="total"]', b.total);
    for (const k of Object.keys(b.counts || {})) setText('[data-count="' + k + '"]', b.counts[k]);
    for (const r of b.recipients || []) {
      const row = root.querySelector('tr[data-recipient="' + Number(r.id) + '"]');
      if (!row) continue;
      const word = r.status === "queued" ? "pending" : String(r.status);
      const cell = row.querySelector(".r-outcome");
      if (cell && cell.textContent !== word) {
        cell.textContent = word;
        cell.className = "r-outcome outcome-" + word.replace(/[^a-z]/g, "");
      }
      const err = row.querySelector(".r-error");
      if (err) err.textContent = r.error || "";
    }
    if (b.status !== "sending") {
      root.dataset.status = "done";
      if (state) state.textContent = "Done.";
    }
  }

  function tick() {
    SB.getJSON("/api/broadcasts/" + encodeURIComponent(id))
      .then((b) => { failures = 0; update(b); })
      .catch(() => { failures += 1; })
      .finally(() => {
        if (root.dataset.status === "sending" && failures < 10) setTimeout(tick, 2000);
      });
  }
  setTimeout(tick, 2000);
})();
