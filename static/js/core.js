// Switchboard staff page, core: the live stream, CSRF-carrying fetch and
// small helpers the other scripts use. Progressive enhancement only: every
// page works without script. No framework, no build step; the files in
// static/js/ are concatenated (in src/web/assets.rs order) into one app.js,
// each wrapped in its own function scope.
//
// Live events: one EventSource on /api/stream, resumed from the event id
// the page was rendered at (body[data-event-id]), so nothing between render
// and connect is lost. Each event is re-dispatched on `document` as
//   sb:issue        detail = the issue, as in GET /api/issues
//   sb:message      detail = the message, as in the timeline
//   sb:notification detail = the notification
// Page scripts listen for those; none opens a stream of its own.
"use strict";
window.SB = (function () {
  const body = document.body;
  const csrf = body ? body.dataset.csrf || "" : "";

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

  return { csrf, send, getJSON, el };
})();
