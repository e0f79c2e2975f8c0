// The Issue Tracker list (templates/tracker.html): live rows, Load more,
// the Staff select's auto-submit and the j/k/Enter/t shortcuts.
//
// Rows arriving live are built from the page's <template id="row-template">
// and filled with textContent only: customer names, subjects and previews
// never pass through innerHTML. The page's filters are on the list element
// (data-status, data-assignee, data-q) so a live issue is shown only where
// it belongs. Counts and unread badges are not guessed here: after a burst
// of events the script asks /tracker/summary, which counts with the same
// store calls as the page itself.
const list = document.getElementById("issue-list");
const staffSelect = document.querySelector("select[data-autosubmit]");
if (staffSelect && staffSelect.form) {
  staffSelect.addEventListener("change", () => staffSelect.form.requestSubmit());
}
if (!list) return;

const template = document.getElementById("row-template");
const empty = document.getElementById("empty-list");
const want = {
  status: list.dataset.status || "open",
  assignee: list.dataset.assignee || "",
  q: list.dataset.q || "",
};
// A later page (reached without script) is a snapshot: new issues belong
// on the first page, so only rows already shown are updated there.
const paged = new URLSearchParams(location.search).has("cursor");

// ------------------------------------------------------------- rows

function statusText(i) {
  if (i.status === "unassigned") return "Unassigned";
  if (i.status === "assigned") return i.assignee ? "Assigned to " + i.assignee.name : "Assigned";
  const verb = i.resolution === "resolved" ? "Resolved" : "Closed";
  return i.closed_by ? verb + " by " + i.closed_by.name : verb + " automatically";
}

function matches(i) {
  if (want.status === "open" ? i.status === "closed" : i.status !== want.status) return false;
  if (want.assignee === "none") return !i.assignee;
  if (want.assignee) return !!i.assignee && String(i.assignee.id) === want.assignee;
  return true;
}

function rowOf(id) {
  return list.querySelector('li.row[data-id="' + Number(id) + '"]');
}

function setUnread(li, n) {
  const badge = li.querySelector(".unread");
  const num = li.querySelector(".unread-n");
  n = Math.max(0, n | 0);
  if (num) num.textContent = String(n);
  if (badge) badge.hidden = n === 0;
  li.classList.toggle("is-unread", n > 0);
}

function unreadOf(li) {
  const badge = li.querySelector(".unread");
  return badge && !badge.hidden ? Number(li.querySelector(".unread-n").textContent) || 0 : 0;
}

/** Fills a row (new or existing) from an issue as the API shows it. */
function fill(li, i) {
  li.dataset.id = String(i.id);
  li.dataset.status = i.status;
  const link = li.querySelector(".row-link");
  link.setAttribute("href", "/issues/" + i.id);
  li.querySelector(".row-id").textContent = "#" + i.id;
  li.querySelector(".row-customer").textContent = i.customer ? i.customer.name : "";
  li.querySelector(".row-subject").textContent = i.subject || "";
  const preview = i.last_message_preview || "";
  const subject = (i.subject || "").replace(/…$/, "").trim();
  // As on the server: a preview that only repeats the subject is left out.
  li.querySelector(".row-preview").textContent =
    subject && preview.startsWith(subject) && preview.length <= 80 ? "" : preview;
  const status = li.querySelector(".status");
  status.className = "status status-" + i.status;
  status.textContent = statusText(i);
  li.querySelector(".channel").textContent = i.channel;
  li.querySelector(".ack").hidden = !i.ack_only;
  const time = li.querySelector("time");
  time.setAttribute("datetime", i.last_message_at);
  time.setAttribute("data-rel", "");
  time.textContent = SB.ago(i.last_message_at);
  if (!i.unread) setUnread(li, 0);
  // Take It is for unassigned issues, to anyone (SPEC §2); the server
  // decides again when it is pressed.
  let form = li.querySelector("form.row-actions");
  if (i.status === "unassigned") {
    if (!form && template) {
      form = template.content.querySelector("form.row-actions").cloneNode(true);
      li.appendChild(form);
    }
    if (form) {
      form.setAttribute("action", "/issues/" + i.id + "/take");
      form.hidden = false;
    }
  } else if (form) {
    form.remove();
  }
}

function newRow(i) {
  const li = template.content.querySelector("li.row").cloneNode(true);
  fill(li, i);
  return li;
}

function syncEmpty() {
  if (empty) empty.hidden = list.querySelector("li.row") !== null;
}

// ---------------------------------------------------- summary refresh

let summaryTimer = null;
function refreshSummary() {
  clearTimeout(summaryTimer);
  summaryTimer = setTimeout(() => {
    const params = new URLSearchParams();
    const tab = list.dataset.tab;
    if (tab) params.set("tab", tab);
    if (want.q) params.set("q", want.q);
    if (list.dataset.staff) params.set("staff", list.dataset.staff);
    const ids = Array.from(list.querySelectorAll("li.row"), (li) => li.dataset.id);
    params.set("ids", ids.join(","));
    SB.getJSON("/tracker/summary?" + params.toString()).then((s) => {
      for (const [name, n] of Object.entries(s.counts || {})) {
        const c = document.querySelector('[data-tab-count="' + name + '"] .count');
        if (c) c.textContent = String(n);
      }
      for (const li of list.querySelectorAll("li.row")) {
        setUnread(li, (s.unread || {})[li.dataset.id] || 0);
      }
    }).catch(() => {});
  }, 250);
}

// ------------------------------------------------------------ live

document.addEventListener("sb:issue", (ev) => {
  const i = ev.detail;
  if (!i || !i.id) return;
  let li = rowOf(i.id);
  if (li && !matches(i)) {
    li.remove();
  } else if (li) {
    const before = li.querySelector("time").getAttribute("datetime");
    fill(li, i);
    if (Date.parse(i.last_message_at) > Date.parse(before) && !paged) list.prepend(li);
  } else if (matches(i) && !want.q && !paged && template) {
    // A search cannot be judged from here: rows matching one appear on reload.
    li = newRow(i);
    list.prepend(li);
    li.classList.add("is-new");
    setTimeout(() => li.classList.remove("is-new"), 2000);
  }
  syncEmpty();
  refreshSummary();
});

document.addEventListener("sb:message", (ev) => {
  const m = ev.detail;
  if (!m || !m.issue_id || m.kind === "event") return;
  const mine = m.author && m.author.type === "staff" && m.author.id === SB.me;
  const li = rowOf(m.issue_id);
  if (li && !mine) setUnread(li, unreadOf(li) + 1);
  if (m.kind === "customer") {
    // A moment's wait lets the issue's own event (which may come just
    // after) put the row, and so its subject, on the page.
    setTimeout(() => {
      const how = m.channel === "email" ? "email" : "SMS";
      const who = m.author ? m.author.name : "a customer";
      const row = rowOf(m.issue_id);
      const subject = row ? row.querySelector(".row-subject").textContent : "";
      const text = "New " + how + " from " + who + " — #" + m.issue_id + (subject ? " " + subject : "");
      SB.toast(text, "/issues/" + m.issue_id, m.issue_id);
    }, 150);
  }
  refreshSummary();
});

// ------------------------------------------------------- load more

const more = document.getElementById("load-more");
if (more) {
  more.addEventListener("submit", (ev) => {
    const cursor = list.dataset.cursor;
    if (!cursor || !template) return;
    ev.preventDefault();
    const button = more.querySelector("button");
    button.disabled = true;
    SB.getJSON("/api/issues?" + list.dataset.api + "&cursor=" + encodeURIComponent(cursor))
      .then((page) => {
        for (const i of page.issues || []) {
          if (!rowOf(i.id)) list.appendChild(newRow(i));
        }
        if (page.next_cursor) {
          list.dataset.cursor = page.next_cursor;
          more.querySelector("input[name=cursor]").value = page.next_cursor;
          button.disabled = false;
        } else {
          delete list.dataset.cursor;
          more.remove();
        }
        syncEmpty();
        refreshSummary();
      })
      .catch(() => {
        // Fall back to the plain form: the next page, rendered by the server.
        more.submit();
      });
  });
}

// --------------------------------------------------------- shortcuts

let selected = null;
function select(li) {
  if (selected) selected.classList.remove("is-selected");
  selected = li;
  if (!li) return;
  li.classList.add("is-selected");
  li.querySelector(".row-link").focus({ preventScroll: true });
  li.scrollIntoView({ block: "nearest" });
}

document.addEventListener("keydown", (ev) => {
  if (SB.typing(ev)) return;
  const rows = Array.from(list.querySelectorAll("li.row"));
  if (!rows.length) return;
  if (selected && !list.contains(selected)) selected = null;
  const at = selected ? rows.indexOf(selected) : -1;
  if (ev.key === "j") {
    select(rows[Math.min(rows.length - 1, at + 1)]);
    ev.preventDefault();
  } else if (ev.key === "k") {
    select(rows[Math.max(0, at - 1)]);
    ev.preventDefault();
  } else if (ev.key === "Enter" && selected && ev.target === document.body) {
    location.href = selected.querySelector(".row-link").getAttribute("href");
  } else if (ev.key === "t" && selected) {
    const form = selected.querySelector("form.row-actions");
    if (form && !form.hidden) form.requestSubmit();
    ev.preventDefault();
  }
});
// A row clicked or focused becomes the selection, so j/k go on from there.
list.addEventListener("focusin", (ev) => {
  const li = ev.target.closest("li.row");
  if (li && li !== selected) {
    if (selected) selected.classList.remove("is-selected");
    selected = li;
    li.classList.add("is-selected");
  }
});
