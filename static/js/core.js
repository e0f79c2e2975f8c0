// Switchboard staff page, core: the live stream, CSRF-carrying fetch and
// small helpers the other scripts use, and what every page's top bar does
// (notification badge and panel, pop-ups, the shortcuts dialog). Progressive
// enhancement only: every page works without script. No framework, no build
// step; the files in static/js/ are concatenated (in src/web/assets.rs
// order) into one app.js, each wrapped in its own function scope.
//
// Live events: one EventSource on /api/stream, resumed from the event id
// the page was rendered at (body[data-event-id]), so nothing between render
// and connect is lost. Each event is re-dispatched on `document` as
//   sb:issue        detail = the issue, as in GET /api/issues
//   sb:message      detail = the message, as in the timeline
//   sb:notification detail = the notification
// Page scripts listen for those; none opens a stream of its own.
//
// Customer text is only ever set as textContent (SB.el), never as HTML.
"use strict";
window.SB = (function () {
  const body = document.body;
  const csrf = body ? body.dataset.csrf || "" : "";
  const me = body ? Number(body.dataset.staffId || 0) : 0;

  /** POST (or another method) to one of the page's own routes. */
  function send(url, method, data) {
    const init = {
      method: method || "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf },
    };
    if (data instanceof FormData) {
      init.body = data;
    } else if (data !== undefined) {
      init.headers["Content-Type"] = "application/x-www-form-urlencoded";
      init.body = new URLSearchParams(data).toString();
    }
    return fetch(url, init);
  }

  /** GET JSON from the API with the session cookie. */
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(r.status))));
  }

  /** An element with text content only (never HTML). */
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    if (attrs) for (const k of Object.keys(attrs)) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  /** "just now", "5 min ago", "3 h ago", "2 d ago", or the date (as the server says it). */
  function ago(iso) {
    const t = Date.parse(iso);
    if (isNaN(t)) return "";
    const s = Math.max(0, Math.floor((Date.now() - t) / 1000));
    if (s < 60) return "just now";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    if (s < 2592000) return Math.floor(s / 86400) + " d ago";
    return new Date(t).toLocaleDateString(undefined, { day: "numeric", month: "short", year: "numeric" });
  }

  /** Refreshes every relative time on the page (time[data-rel]). */
  function refreshTimes() {
    for (const t of document.querySelectorAll("time[data-rel]")) {
      const text = ago(t.getAttribute("datetime"));
      if (text && t.textContent !== text) t.textContent = text;
    }
  }
  setInterval(refreshTimes, 60000);

  /** Whether a key press belongs to a field the person is typing in. */
  function typing(ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return true;
    const t = ev.target;
    if (!t || !t.tagName) return false;
    return /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName) || t.isContentEditable;
  }

  // ---------------------------------------------------------------- pop-ups

  const toasts = document.getElementById("toasts");
  const recent = new Map();

  /**
   * A pop-up (role=status) at the top right that hides itself after ~6 s.
   * `key` (an issue id) keeps one event from popping up twice when the
   * issue, its message and a notification about it arrive together.
   */
  function toast(text, href, key) {
    if (!toasts || !text) return;
    const now = Date.now();
    if (key !== undefined && key !== null) {
      if (now - (recent.get(key) || 0) < 5000) return;
      recent.set(key, now);
    }
    const box = el("div", { class: "toast", role: "status" });
    if (href) {
      box.appendChild(el("a", { href: href }, text));
    } else {
      box.textContent = text;
    }
    const close = el("button", { type: "button", class: "toast-close", "aria-label": "Dismiss" }, "×");
    close.addEventListener("click", () => box.remove());
    box.appendChild(close);
    toasts.appendChild(box);
    while (toasts.children.length > 4) toasts.firstElementChild.remove();
    let timer = setTimeout(() => box.remove(), 6000);
    // Hovering or focusing keeps it, so it can be read and clicked.
    box.addEventListener("mouseenter", () => clearTimeout(timer));
    box.addEventListener("focusin", () => clearTimeout(timer));
    box.addEventListener("mouseleave", () => { timer = setTimeout(() => box.remove(), 3000); });
  }

  // ---------------------------------------------------------- notifications

  const notifButton = document.getElementById("notifications-button");
  const notifPanel = document.getElementById("notifications-panel");
  const notifList = document.getElementById("notif-list");
  const notifBadge = document.getElementById("notif-count");
  const readAll = document.getElementById("notif-read-all");

  function setBadge(n) {
    if (!notifBadge) return;
    n = Math.max(0, n | 0);
    notifBadge.textContent = String(n);
    notifBadge.hidden = n === 0;
  }
  function badgeCount() {
    return notifBadge && !notifBadge.hidden ? Number(notifBadge.textContent) || 0 : 0;
  }

  function notifItem(n) {
    const li = el("li", { class: n.read_at ? "notif" : "notif is-unread" });
    const href = n.issue_id ? "/issues/" + n.issue_id : null;
    li.appendChild(href ? el("a", { href: href }, n.text) : el("span", null, n.text));
    const t = el("time", { datetime: n.created_at, "data-rel": "" }, ago(n.created_at));
    li.appendChild(t);
    return li;
  }

  function loadNotifications() {
    if (!notifList) return;
    getJSON("/api/notifications?limit=20").then((page) => {
      notifList.replaceChildren();
      for (const n of page.notifications || []) notifList.appendChild(notifItem(n));
      if (!notifList.children.length) notifList.appendChild(el("li", { class: "hint" }, "Nothing yet."));
      setBadge(page.unread_count);
    }).catch(() => {
      notifList.replaceChildren(el("li", { class: "error" }, "Notifications could not be loaded."));
    });
  }

  function panelOpen() { return notifPanel && !notifPanel.hidden; }
  function togglePanel(open) {
    if (!notifPanel || !notifButton) return;
    notifPanel.hidden = !open;
    notifButton.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      loadNotifications();
      const first = readAll || notifPanel;
      first.focus();
    }
  }
  if (notifButton) notifButton.addEventListener("click", () => togglePanel(!panelOpen()));
  if (readAll) {
    readAll.addEventListener("click", () => {
      send("/notifications/read", "POST", { all: "1" })
        .then((r) => (r.ok ? r.json() : Promise.reject(new Error(r.status))))
        .then((j) => {
          setBadge(j.unread_count);
          if (notifList) for (const li of notifList.querySelectorAll(".is-unread")) li.classList.remove("is-unread");
        })
        .catch(() => toast("Could not mark the notifications read. Reload the page and try again."));
    });
  }
  document.addEventListener("click", (ev) => {
    if (panelOpen() && !notifPanel.contains(ev.target) && !notifButton.contains(ev.target)) togglePanel(false);
  });

  document.addEventListener("sb:notification", (ev) => {
    const n = ev.detail || {};
    setBadge(badgeCount() + 1);
    if (panelOpen() && notifList) {
      const hint = notifList.querySelector(".hint");
      if (hint) hint.remove();
      notifList.prepend(notifItem(n));
    }
    toast(n.text, n.issue_id ? "/issues/" + n.issue_id : null, n.issue_id);
  });

  // --------------------------------------------------------------- shortcuts

  const shortcuts = document.getElementById("shortcuts");
  const shortcutsClose = document.getElementById("shortcuts-close");
  let opener = null;
  function showShortcuts(open) {
    if (!shortcuts) return;
    if (open) {
      opener = document.activeElement;
      shortcuts.hidden = false;
      if (shortcutsClose) shortcutsClose.focus();
    } else if (!shortcuts.hidden) {
      shortcuts.hidden = true;
      if (opener && opener.focus) opener.focus();
    }
  }
  if (shortcutsClose) shortcutsClose.addEventListener("click", () => showShortcuts(false));

  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") {
      if (shortcuts && !shortcuts.hidden) { showShortcuts(false); ev.preventDefault(); return; }
      if (panelOpen()) { togglePanel(false); notifButton.focus(); ev.preventDefault(); }
      return;
    }
    if (typing(ev)) return;
    if (ev.key === "?") {
      showShortcuts(shortcuts && shortcuts.hidden);
      ev.preventDefault();
    } else if (ev.key === "/") {
      const search = document.getElementById("search");
      if (search) { search.focus(); search.select(); ev.preventDefault(); }
    }
  });

  // ------------------------------------------------------------------ stream

  let source = null;
  function connect() {
    if (!body || !body.dataset.eventId || !window.EventSource) return;
    const from = encodeURIComponent(body.dataset.eventId);
    source = new EventSource("/api/stream?last_event_id=" + from);
    for (const kind of ["issue", "message", "notification"]) {
      source.addEventListener(kind, (ev) => {
        let data;
        try { data = JSON.parse(ev.data); } catch (_) { return; }
        if (ev.lastEventId) body.dataset.eventId = ev.lastEventId;
        document.dispatchEvent(new CustomEvent("sb:" + kind, { detail: data }));
      });
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", connect);
  } else {
    connect();
  }

  return { csrf, me, send, getJSON, el, ago, toast, typing, refreshTimes };
})();
