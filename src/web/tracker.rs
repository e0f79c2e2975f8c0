//! The Issue Tracker list (SPEC §9): `GET /` and `/issues`, its live
//! summary (`GET /tracker/summary`) and "Mark all read" for notifications
//! (`POST /notifications/read`).
//!
//! I render the whole list on the server, rows included, so the page works
//! without script and its first paint is one request. The list is the API's
//! list: each tab is an `IssueFilter` handed to `Store::list_issues`, the
//! call behind `GET /api/issues`, with the same opaque cursor; the tabs'
//! counts are that call's `counts` (which honour every filter but status),
//! plus one more call for "Mine". The buttons a row offers come from
//! `domain::state::offered`, the state machine's own answer, so a row never
//! shows Take It to someone the API would refuse.
//!
//! The script (`static/js/tracker.js`) keeps the rows live from the event
//! stream and, after a burst of events, asks `/tracker/summary` for exact
//! counts and unread badges instead of guessing them in the browser: the
//! server stays the one place those numbers are decided.
//!
//! Filters come from the query string: `tab` (`unassigned`, `mine`,
//! `assigned`, `closed`, `open`), `q` (the API's search), `staff` (`none`
//! or a staff id) and `cursor`. Without a tab the list shows Unassigned,
//! or every open issue when a search or staff filter is active: a person
//! searching for a phone number wants that customer's issue whoever has it.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::page::{Chrome, PageError, render};
use super::session::{Viewer, WebForm};
use crate::domain::IssueStatus;
use crate::domain::state::{Actor, IssueState, offered};
use crate::http::AppState;
use crate::http::issues::{decode_cursor, encode_cursor};
use crate::store::{AssigneeFilter, IssueFilter, IssueView, StatusFilter};

/// Rows on one page of the list.
pub const PAGE_ROWS: i64 = 20;
/// The longest search we pass on (the API takes any; a page need not).
const MAX_QUERY_CHARS: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(tracker))
        .route("/issues", get(tracker))
        .route("/tracker/summary", get(summary))
        .route("/notifications/read", post(notifications_read))
}

/// Which list a tab shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Unassigned,
    Mine,
    Assigned,
    Closed,
    /// Every open issue: what a search without a tab shows.
    Open,
}

impl Tab {
    fn parse(s: &str) -> Option<Tab> {
        Some(match s {
            "unassigned" => Tab::Unassigned,
            "mine" => Tab::Mine,
            "assigned" => Tab::Assigned,
            "closed" => Tab::Closed,
            "open" => Tab::Open,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tab::Unassigned => "unassigned",
            Tab::Mine => "mine",
            Tab::Assigned => "assigned",
            Tab::Closed => "closed",
            Tab::Open => "open",
        }
    }

    fn status(self) -> StatusFilter {
        match self {
            Tab::Unassigned => StatusFilter::Is(IssueStatus::Unassigned),
            Tab::Mine | Tab::Assigned => StatusFilter::Is(IssueStatus::Assigned),
            Tab::Closed => StatusFilter::Is(IssueStatus::Closed),
            Tab::Open => StatusFilter::Open,
        }
    }
}

/// The list's query string, read leniently: a value we do not understand
/// is ignored (the page still shows), never a 400 on a bookmark.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub tab: Option<Tab>,
    pub q: String,
    /// `""` anyone, `"none"` unassigned, or a staff id.
    pub staff: String,
    pub cursor: Option<(DateTime<Utc>, i64)>,
    pub cursor_raw: String,
    /// For the summary: the rows the page shows.
    pub ids: Vec<i64>,
}

impl ListQuery {
    pub fn parse(raw: Option<&str>) -> ListQuery {
        let mut out = ListQuery::default();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "tab" => out.tab = Tab::parse(&v),
                "q" => out.q = v.trim().chars().take(MAX_QUERY_CHARS).collect(),
                "staff" => {
                    let v = v.trim();
                    if v == "none" || v.parse::<i64>().is_ok() {
                        out.staff = v.to_string();
                    }
                }
                "cursor" => {
                    out.cursor = decode_cursor(v.trim());
                    if out.cursor.is_some() {
                        out.cursor_raw = v.trim().to_string();
                    }
                }
                "ids" => {
                    out.ids = v
                        .split(',')
                        .filter_map(|s| s.trim().parse().ok())
                        .take(200)
                        .collect();
                }
                _ => {}
            }
        }
        out
    }

    /// The tab shown: the one asked for, else Unassigned, or Open while a
    /// search or staff filter is active.
    pub fn effective_tab(&self) -> Tab {
        self.tab.unwrap_or(if self.filtered() {
            Tab::Open
        } else {
            Tab::Unassigned
        })
    }

    fn filtered(&self) -> bool {
        !self.q.is_empty() || !self.staff.is_empty()
    }

    fn staff_filter(&self) -> Option<AssigneeFilter> {
        match self.staff.as_str() {
            "" => None,
            "none" => Some(AssigneeFilter::None),
            id => id.parse().ok().map(AssigneeFilter::Staff),
        }
    }

    /// The store filter for one tab (Mine is assigned to the viewer,
    /// whatever the staff filter says).
    fn filter(&self, tab: Tab, me: i64, limit: i64, cursor: bool) -> IssueFilter {
        IssueFilter {
            status: Some(tab.status()),
            assignee: if tab == Tab::Mine {
                Some(AssigneeFilter::Staff(me))
            } else {
                self.staff_filter()
            },
            q: (!self.q.is_empty()).then(|| self.q.clone()),
            customer: None,
            limit,
            cursor: if cursor { self.cursor } else { None },
        }
    }

    /// The same list as `/api/issues` query parameters (for "Load more"
    /// from script), without the cursor.
    fn api_query(&self, tab: Tab) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        s.append_pair("status", tab.status_param());
        let assignee = if tab == Tab::Mine {
            "me".to_string()
        } else {
            self.staff.clone()
        };
        if !assignee.is_empty() {
            s.append_pair("assignee", &assignee);
        }
        if !self.q.is_empty() {
            s.append_pair("q", &self.q);
        }
        s.append_pair("limit", &PAGE_ROWS.to_string());
        s.finish()
    }

    /// A link to `tab` keeping the search and staff filter.
    fn tab_href(&self, tab: Tab) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        s.append_pair("tab", tab.as_str());
        if !self.q.is_empty() {
            s.append_pair("q", &self.q);
        }
        if !self.staff.is_empty() {
            s.append_pair("staff", &self.staff);
        }
        format!("/issues?{}", s.finish())
    }
}

impl Tab {
    fn status_param(self) -> &'static str {
        match self {
            Tab::Unassigned => "unassigned",
            Tab::Mine | Tab::Assigned => "assigned",
            Tab::Closed => "closed",
            Tab::Open => "open",
        }
    }
}

/// The four tabs' counts.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct TabCounts {
    pub unassigned: i64,
    pub mine: i64,
    pub assigned: i64,
    pub closed: i64,
}

/// One row of the list, ready to show.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: i64,
    pub customer: String,
    pub subject: String,
    pub preview: String,
    pub channel: &'static str,
    pub status: &'static str,
    pub status_text: String,
    /// RFC 3339, for `<time datetime>` and the script's refresh.
    pub at: String,
    pub ago: String,
    pub unread: i64,
    pub ack_only: bool,
    pub take: bool,
}

/// How a status reads, in words (the colour only repeats it).
pub fn status_text(i: &IssueView) -> String {
    match i.status {
        IssueStatus::Unassigned => "Unassigned".to_string(),
        IssueStatus::Assigned => match &i.assignee {
            Some(a) => format!("Assigned to {}", a.name),
            None => "Assigned".to_string(),
        },
        IssueStatus::Closed => {
            let verb = match i.resolution {
                Some(crate::domain::Resolution::Resolved) => "Resolved",
                _ => "Closed",
            };
            match &i.closed_by {
                Some(p) => format!("{verb} by {}", p.name),
                None => format!("{verb} automatically"),
            }
        }
    }
}

/// "just now", "5 min ago", "3 h ago", "2 d ago", or the date.
pub fn ago(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds().max(0);
    match secs {
        0..60 => "just now".to_string(),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        86_400..2_592_000 => format!("{} d ago", secs / 86_400),
        _ => at.format("%-d %b %Y").to_string(),
    }
}

/// The last-message preview, unless it only repeats the subject (an SMS
/// issue's subject is the start of its first message).
pub fn preview_beside(subject: &str, preview: Option<&str>) -> String {
    let preview = preview.unwrap_or("");
    let subject = subject.trim_end_matches('…').trim();
    if !subject.is_empty() && preview.starts_with(subject) && preview.chars().count() <= 80 {
        String::new()
    } else {
        preview.to_string()
    }
}

fn row(i: &IssueView, viewer: &Viewer, unread: &HashMap<i64, i64>, now: DateTime<Utc>) -> Row {
    let state = IssueState {
        status: i.status,
        assignee_id: i.assignee_id,
        resolution: i.resolution,
        closed_by: i.closed_by.as_ref().map(|p| p.id),
    };
    let actor = Actor {
        id: viewer.staff.id,
        role: viewer.staff.role,
    };
    Row {
        id: i.id,
        customer: i.customer.name.clone(),
        subject: i.subject.clone(),
        preview: preview_beside(&i.subject, i.last_message_preview.as_deref()),
        channel: i.channel.as_str(),
        status: i.status.as_str(),
        status_text: status_text(i),
        at: i
            .last_message_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ago: ago(now, i.last_message_at),
        unread: unread.get(&i.id).copied().unwrap_or(0),
        ack_only: i.ack_only,
        take: offered(state, actor).take,
    }
}

/// A tab link with its count.
pub struct TabLink {
    pub label: &'static str,
    pub href: String,
    pub count: i64,
    pub current: bool,
}

/// An option of the Staff select.
pub struct StaffOption {
    pub value: String,
    pub name: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "tracker.html")]
struct TrackerPage {
    chrome: Chrome,
    tabs: Vec<TabLink>,
    tab: &'static str,
    heading: &'static str,
    q: String,
    staff: Vec<StaffOption>,
    /// The list's filters for the script: `/api/issues` parameters, and
    /// what a live row must match.
    api_query: String,
    live_status: &'static str,
    live_assignee: String,
    /// The Staff filter as given (`""`, `none` or an id).
    staff_param: String,
    rows: Vec<Row>,
    next_cursor: Option<String>,
    /// Whether this is a later page (reached by Load more without script).
    paged: bool,
    first_page: String,
}

/// The counts of the four tabs under the current search and staff filter.
async fn tab_counts(
    state: &AppState,
    q: &ListQuery,
    me: i64,
    shown: Option<(Tab, crate::store::IssueCounts)>,
) -> Result<TabCounts, PageError> {
    let base = match shown {
        Some((tab, counts)) if tab != Tab::Mine => counts,
        _ => {
            state
                .store
                .list_issues(&q.filter(Tab::Open, me, 0, false), me)
                .await?
                .1
        }
    };
    let mine = match shown {
        Some((Tab::Mine, counts)) => counts.assigned,
        _ => {
            state
                .store
                .list_issues(&q.filter(Tab::Mine, me, 0, false), me)
                .await?
                .1
                .assigned
        }
    };
    Ok(TabCounts {
        unassigned: base.unassigned,
        mine,
        assigned: base.assigned,
        closed: base.closed,
    })
}

async fn tracker(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    // The chrome first: its event id is read before the list, so an event
    // committed while we render is replayed by the page's stream.
    let chrome = Chrome::load(&state, &viewer, "issues").await?;
    let q = ListQuery::parse(raw.as_deref());
    let me = viewer.staff.id;
    let tab = q.effective_tab();

    // One row more than a page says whether another page exists.
    let (mut issues, counts) = state
        .store
        .list_issues(&q.filter(tab, me, PAGE_ROWS + 1, true), me)
        .await?;
    let more = issues.len() as i64 > PAGE_ROWS;
    issues.truncate(PAGE_ROWS as usize);
    let next_cursor = if more {
        issues
            .last()
            .map(|i| encode_cursor(i.last_message_at, i.id))
    } else {
        None
    };
    let counts = tab_counts(&state, &q, me, Some((tab, counts))).await?;
    let ids: Vec<i64> = issues.iter().map(|i| i.id).collect();
    let unread = state.store.unread_counts(me, &ids).await?;
    let now = Utc::now();
    let rows = issues
        .iter()
        .map(|i| row(i, &viewer, &unread, now))
        .collect();

    let mut people = state.store.list_staff().await?;
    people.retain(|s| s.active);
    people.sort_by_key(|s| s.name.to_lowercase());
    let mut staff = vec![
        StaffOption {
            value: String::new(),
            name: "Anyone".into(),
            selected: q.staff.is_empty(),
        },
        StaffOption {
            value: "none".into(),
            name: "Unassigned".into(),
            selected: q.staff == "none",
        },
    ];
    staff.extend(people.into_iter().map(|s| {
        let value = s.id.to_string();
        StaffOption {
            selected: q.staff == value,
            value,
            name: s.name,
        }
    }));

    let tabs = [
        (Tab::Unassigned, "Unassigned", counts.unassigned),
        (Tab::Mine, "Mine", counts.mine),
        (Tab::Assigned, "Assigned", counts.assigned),
        (Tab::Closed, "Closed", counts.closed),
    ]
    .into_iter()
    .map(|(t, label, count)| TabLink {
        label,
        href: q.tab_href(t),
        count,
        current: t == tab,
    })
    .collect();
    let heading = match tab {
        Tab::Unassigned => "Unassigned issues",
        Tab::Mine => "My issues",
        Tab::Assigned => "Assigned issues",
        Tab::Closed => "Closed issues",
        Tab::Open => "Open issues",
    };
    let live_assignee = match tab {
        Tab::Mine => me.to_string(),
        _ => q.staff.clone(),
    };
    let first_page = q.tab_href(tab);
    Ok(render(&TrackerPage {
        chrome,
        tabs,
        tab: tab.as_str(),
        heading,
        api_query: q.api_query(tab),
        live_status: tab.status_param(),
        live_assignee,
        staff_param: q.staff.clone(),
        q: q.q.clone(),
        staff,
        rows,
        next_cursor,
        paged: q.cursor.is_some(),
        first_page,
    }))
}

/// `GET /tracker/summary`: the tabs' counts and the unread badges of the
/// rows a page shows (`ids`), after live events changed them.
#[derive(Debug, Serialize)]
struct Summary {
    counts: TabCounts,
    /// Issue id → unread messages; ids with none are absent.
    unread: HashMap<i64, i64>,
}

async fn summary(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let q = ListQuery::parse(raw.as_deref());
    let me = viewer.staff.id;
    let counts = tab_counts(&state, &q, me, None).await?;
    let unread = state.store.unread_counts(me, &q.ids).await?;
    Ok(Json(Summary { counts, unread }).into_response())
}

/// `POST /notifications/read`: `all=1`, or `ids=1,2,3`.
#[derive(Debug, Deserialize)]
struct ReadForm {
    all: Option<String>,
    ids: Option<String>,
}

/// Marks the viewer's notifications read, through the same store call as
/// `POST /api/notifications/read`. The page's script (which sends the
/// CSRF token as a header) gets the unread count left as JSON; a plain
/// form post is sent back where it came from.
async fn notifications_read(
    State(state): State<AppState>,
    headers: HeaderMap,
    WebForm { viewer, form }: WebForm<ReadForm>,
) -> Result<Response, PageError> {
    let unread = if form
        .all
        .as_deref()
        .is_some_and(|a| !a.is_empty() && a != "0")
    {
        state
            .store
            .mark_notifications_read(viewer.staff.id, None)
            .await?
    } else {
        let ids: Vec<i64> = form
            .ids
            .as_deref()
            .unwrap_or("")
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .take(500)
            .collect();
        if ids.is_empty() {
            return Err(PageError::bad_request(
                "Choose the notifications to mark read.",
            ));
        }
        state
            .store
            .mark_notifications_read(viewer.staff.id, Some(&ids))
            .await?
    };
    if headers.contains_key(super::session::CSRF_HEADER) {
        return Ok((
            StatusCode::OK,
            Json(serde_json::json!({ "unread_count": unread })),
        )
            .into_response());
    }
    Ok(Redirect::to(&back_to(&headers)).into_response())
}

/// The page a form came from, if it is one of ours; else the tracker.
fn back_to(headers: &HeaderMap) -> String {
    headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| {
            let after_scheme = r.split_once("://")?.1;
            let path = &after_scheme[after_scheme.find('/')?..];
            (path.starts_with('/') && !path.starts_with("//")).then(|| path.to_string())
        })
        .unwrap_or_else(|| "/".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn relative_times_read_like_a_person_says_them() {
        let now = Utc::now();
        assert_eq!(ago(now, now), "just now");
        assert_eq!(ago(now, now + Duration::seconds(30)), "just now");
        assert_eq!(ago(now, now - Duration::minutes(5)), "5 min ago");
        assert_eq!(ago(now, now - Duration::hours(3)), "3 h ago");
        assert_eq!(ago(now, now - Duration::days(2)), "2 d ago");
    }

    #[test]
    fn a_search_without_a_tab_shows_every_open_issue() {
        assert_eq!(ListQuery::parse(None).effective_tab(), Tab::Unassigned);
        assert_eq!(ListQuery::parse(Some("q=jane")).effective_tab(), Tab::Open);
        assert_eq!(ListQuery::parse(Some("staff=3")).effective_tab(), Tab::Open);
        assert_eq!(
            ListQuery::parse(Some("tab=closed&q=jane")).effective_tab(),
            Tab::Closed
        );
        // Nonsense is ignored, not refused.
        let q = ListQuery::parse(Some("tab=zzz&staff=bob&cursor=%%%"));
        assert_eq!(q.effective_tab(), Tab::Unassigned);
        assert!(q.cursor.is_none());
    }

    #[test]
    fn a_preview_that_repeats_the_subject_is_left_out() {
        assert_eq!(preview_beside("hello there", Some("hello there")), "");
        assert_eq!(
            preview_beside("hello", Some("a later reply")),
            "a later reply"
        );
        assert_eq!(preview_beside("Order", None), "");
        let long = "x".repeat(100);
        assert_eq!(preview_beside(&long[..80], Some(&long)), long);
    }

    #[test]
    fn back_to_stays_on_this_site() {
        let mut h = HeaderMap::new();
        assert_eq!(back_to(&h), "/");
        h.insert(
            header::REFERER,
            "https://x.test/issues?tab=mine".parse().unwrap(),
        );
        assert_eq!(back_to(&h), "/issues?tab=mine");
        h.insert(
            header::REFERER,
            "https://x.test//evil.test/".parse().unwrap(),
        );
        assert_eq!(back_to(&h), "/");
    }
}
