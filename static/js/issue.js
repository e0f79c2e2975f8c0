// The issue page: live timeline and header, the SMS character and segment
// count, the View Customer dialog, comment Delete confirmation, and the
// `t` (Take It) and `r` (reply) shortcuts.
//
// Progressive enhancement: every control is a form or link that works
// without this script. Live updates fetch fragments our own server renders
// from the page's templates (askama-escaped), parse them with DOMParser and
// insert the nodes; customer text is never put together into HTML here.
"use strict";
const body = document.body;
const issueId = body && body.dataset.issueId;

// ---------------------------------------------------------------- dialog
// Works on any page that has a [data-dialog] opener (the issue page).
function openDialog(opener) {
  const dialog = document.getElementById(opener.dataset.dialog);
  if (!dialog || typeof dialog.showModal !== "function") return false;
  dialog.returnFocus = opener;
  dialog.showModal();
  return true;
}
document.addEventListener("click", (ev) => {
  const opener = ev.target.closest && ev.target.closest("[data-dialog]");
  if (opener && openDialog(opener)) {
    ev.preventDefault();
    return;
  }
  const close = ev.target.closest && ev.target.closest(".dialog-close");
  if (close) {
    const dialog = close.closest("dialog");
    if (dialog) dialog.close();
  }
});
document.addEventListener("keydown", (ev) => {
  // A link with role=button answers Space as a button does.
  const t = ev.target;
  if (ev.key === " " && t && t.matches && t.matches("a[role=button][data-dialog]")) {
    ev.preventDefault();
    openDialog(t);
  }
});
document.addEventListener("close", (ev) => {
  const d = ev.target;
  if (d && d.returnFocus && d.returnFocus.isConnected) d.returnFocus.focus();
}, true);

// <summary role=button> says whether its panel is open.
function syncExpanded(details) {
  const s = details.querySelector(":scope > summary");
  if (s) s.setAttribute("aria-expanded", details.open ? "true" : "false");
}
document.querySelectorAll("details").forEach(syncExpanded);
document.addEventListener("toggle", (ev) => {
  if (ev.target && ev.target.tagName === "DETAILS") {
    syncExpanded(ev.target);
    if (ev.target.open) {
      const first = ev.target.querySelector("select, textarea, input:not([type=hidden])");
      if (first) first.focus();
    }
  }
}, true);

// Delete asks first.
document.addEventListener("submit", (ev) => {
  const form = ev.target;
  if (form && form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    ev.preventDefault();
  }
}, true);

if (issueId) {
  // -------------------------------------------------------------- SMS count
  const GSM = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  const GSM_EXT = "^{}\\[~]|€\f";
  function smsCount(text) {
    let septets = 0;
    let gsm = true;
    for (const ch of text) {
      if (GSM.includes(ch)) septets += 1;
      else if (GSM_EXT.includes(ch)) septets += 2;
      else { gsm = false; break; }
    }
    const chars = Array.from(text).length;
    if (gsm) {
      const segments = septets === 0 ? 0 : septets <= 160 ? 1 : Math.ceil(septets / 153);
      return { chars, segments, encoding: "GSM-7" };
    }
    const units = text.length; // UTF-16 code units, as UCS-2 counts them
    const segments = units <= 70 ? 1 : Math.ceil(units / 67);
    return { chars, segments, encoding: "UCS-2" };
  }
  const reply = document.getElementById("reply-body");
  const counter = document.getElementById("sms-count");
  if (reply && counter && reply.dataset.sms) {
    let timer = null;
    const update = () => {
      const c = smsCount(reply.value);
      counter.textContent = c.chars + (c.chars === 1 ? " character, " : " characters, ") +
        c.segments + (c.segments === 1 ? " segment" : " segments") +
        (c.chars > 0 ? " (" + c.encoding + ")" : "");
    };
    // Polite: update at once for sight, but not on every key for a reader.
    reply.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(update, 150); });
    update();
  }

  // -------------------------------------------------------------- shortcuts
  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.defaultPrevented) return;
    const t = ev.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    if (document.querySelector("dialog[open]")) return;
    if (ev.key === "t") {
      const take = document.querySelector("[data-shortcut=take]");
      if (take) { ev.preventDefault(); take.click(); }
    } else if (ev.key === "r") {
      const box = document.getElementById("reply-body");
      if (box) { ev.preventDefault(); box.focus(); }
    }
  });

  // -------------------------------------------------------------- live
  const timeline = document.getElementById("timeline");
  const head = document.getElementById("issue-head");
  const base = "/issues/" + encodeURIComponent(issueId);

  function fragment(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then((r) => (r.ok ? r.text() : Promise.reject(new Error(String(r.status)))))
      .then((html) => new DOMParser().parseFromString(html, "text/html").body);
  }

  let unreadWhileHidden = false;
  function markRead() {
    if (document.visibilityState !== "visible") { unreadWhileHidden = true; return; }
    unreadWhileHidden = false;
    SB.send(base + "/read", "POST", {}).catch(() => {});
  }
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && unreadWhileHidden) markRead();
  });

  // One fetch at a time, so two quick events never insert a row twice.
  let queue = Promise.resolve();
  function enqueue(job) { queue = queue.then(job).catch(() => {}); }

  function lastId() { return Number(timeline.dataset.lastId || "0"); }

  function appendNew() {
    return fragment(base + "/timeline?after=" + lastId()).then((frag) => {
      let added = 0;
      for (const li of Array.from(frag.children)) {
        const id = Number(li.dataset.id || "0");
        if (!id || document.getElementById("m" + id)) continue;
        timeline.appendChild(document.importNode(li, true));
        if (id > lastId()) timeline.dataset.lastId = String(id);
        added += 1;
      }
      if (added) markRead();
    });
  }

  function refreshRow(id) {
    return fragment(base + "/timeline?message=" + id).then((frag) => {
      const fresh = frag.querySelector("#m" + id);
      const old = document.getElementById("m" + id);
      if (!fresh || !old) return;
      // Keep an open Edit panel (and what is typed in it) as it is.
      if (old.contains(document.activeElement) || old.querySelector("details[open]")) {
        const meta = old.querySelector(".msg-meta");
        const text = old.querySelector(".msg-body");
        const d = old.querySelector(".delivery");
        if (meta && fresh.querySelector(".msg-meta")) meta.replaceWith(document.importNode(fresh.querySelector(".msg-meta"), true));
        if (text && fresh.querySelector(".msg-body")) text.replaceWith(document.importNode(fresh.querySelector(".msg-body"), true));
        if (d && fresh.querySelector(".delivery")) d.replaceWith(document.importNode(fresh.querySelector(".delivery"), true));
        return;
      }
      old.replaceWith(document.importNode(fresh, true));
    });
  }

  document.addEventListener("sb:message", (ev) => {
    const m = ev.detail || {};
    if (String(m.issue_id) !== String(issueId) || !timeline) return;
    const id = Number(m.id || "0");
    if (id && document.getElementById("m" + id)) enqueue(() => refreshRow(id));
    else enqueue(appendNew);
  });

  function refreshHead() {
    return fragment(base + "/head").then((frag) => {
      // Keep focus on the same control when it still exists.
      const active = document.activeElement;
      const form = active && head.contains(active) ? active.closest("form") : null;
      const action = form ? form.getAttribute("action") : null;
      const openAssign = head.querySelector("details.assign[open]");
      head.replaceChildren(...Array.from(frag.childNodes).map((n) => document.importNode(n, true)));
      const details = head.querySelector("details.assign");
      if (details && openAssign) details.open = true;
      head.querySelectorAll("details").forEach(syncExpanded);
      // Reopened or closed elsewhere: offer or withdraw the reply box
      // (its text stays as typed).
      const fresh = head.querySelector(".issue-head");
      const replyForm = document.getElementById("reply-form");
      const note = document.getElementById("reply-closed");
      if (fresh && replyForm && note) {
        const open = fresh.dataset.open === "true";
        replyForm.hidden = !open;
        note.hidden = open;
      }
      if (action) {
        const again = head.querySelector('form[action="' + CSS.escape(action) + '"] button');
        if (again) again.focus();
      }
    });
  }

  document.addEventListener("sb:issue", (ev) => {
    const i = ev.detail || {};
    if (String(i.id) !== String(issueId) || !head) return;
    enqueue(refreshHead);
  });
}
