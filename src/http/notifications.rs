//! In-app notifications, preferences, watchers and the live stream (SPEC §4,
//! §5).
//!
//! Routes are registered with `routes!` from their `#[utoipa::path]`, so
//! what is served and what `/api/openapi.json` documents cannot drift.

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Caller, StreamCaller};
use super::error::{
    ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, AuthErrors, BodyErrors, NotFoundError,
    QueryErrors,
};
use crate::domain::notify::{Cell, NotifyEvent};
use crate::store::{NotificationView, Staff, StreamRow};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(mark_read))
        .routes(routes!(get_prefs, put_prefs))
        .routes(routes!(watch, unwatch))
        .routes(routes!(stream))
}

/// `GET /api/notifications`: one page, newest first.
#[derive(Serialize, ToSchema)]
struct NotificationPage {
    notifications: Vec<NotificationView>,
    unread_count: i64,
    /// Pass back as `cursor` for the next page; null on the last page.
    next_cursor: Option<i64>,
}

/// The caller's in-app notifications
#[utoipa::path(
    get,
    path = "/api/notifications",
    operation_id = "list_notifications",
    tag = "notifications",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of notifications", body = NotificationPage),
        QueryErrors,
        AuthErrors,
    )
)]
async fn list(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<NotificationPage>> {
    let unread = match q.unread.as_deref() {
        None | Some("") | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "`unread` must be true or false",
            ));
        }
    };
    let limit = match q.limit.as_deref() {
        None => 20,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request("invalid_parameter", "`limit` must be 1 to 100")
            })?,
    };
    let before = match q
        .cursor
        .as_deref()
        .or(q.before.as_deref())
        .filter(|v| !v.is_empty())
    {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| ApiError::bad_request("invalid_parameter", "bad cursor"))?,
        ),
    };
    let (list, unread_count) = state
        .store
        .notifications(me.id, unread, before, limit)
        .await?;
    let next = (list.len() as i64 == limit)
        .then(|| list.last().map(|n| n.id))
        .flatten();
    Ok(Json(NotificationPage {
        notifications: list,
        unread_count,
        next_cursor: next,
    }))
}

/// The query of `GET /api/notifications`, read as text and checked by the
/// handler.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only unread ones
    #[param(value_type = Option<bool>)]
    unread: Option<String>,
    /// Page size (default 20)
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// `next_cursor` of the previous page
    #[param(value_type = Option<i64>)]
    cursor: Option<String>,
    /// The same as `cursor`
    #[param(value_type = Option<i64>)]
    before: Option<String>,
}

/// `POST /api/notifications/read`: `ids` or `"all": true`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ReadNotifications)]
struct ReadBody {
    ids: Option<Vec<i64>>,
    all: Option<bool>,
}

/// What is left unread.
#[derive(Serialize, ToSchema)]
struct UnreadCount {
    unread_count: i64,
}

/// Mark notifications read
#[utoipa::path(
    post,
    path = "/api/notifications/read",
    operation_id = "mark_notifications_read",
    tag = "notifications",
    request_body = ReadBody,
    responses(
        (status = 200, description = "The unread count left", body = UnreadCount),
        BodyErrors,
        AuthErrors,
    )
)]
async fn mark_read(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiJson(body): ApiJson<ReadBody>,
) -> ApiResult<Json<UnreadCount>> {
    let unread = match (body.ids, body.all) {
        (_, Some(true)) => state.store.mark_notifications_read(me.id, None).await?,
        (Some(ids), _) => {
            state
                .store
                .mark_notifications_read(me.id, Some(&ids))
                .await?
        }
        _ => {
            return Err(ApiError::unprocessable(
                "invalid_request",
                "give `ids` or `\"all\": true`",
            ));
        }
    };
    Ok(Json(UnreadCount {
        unread_count: unread,
    }))
}

/// The notification matrix: one key per event of SPEC §5
/// (`issue_opened`, `customer_replied`, …), each `{in_app, email}`.
#[derive(Serialize, ToSchema)]
#[serde(transparent)]
pub struct Preferences(BTreeMap<String, Cell>);

// `put_prefs` reads the body as JSON and checks every key itself, so that
// unknown events or channels are refused by name; this type only describes
// it for the document.

/// A change to the matrix: any subset of events, and of channels per event.
#[derive(ToSchema)]
pub struct PreferencesPatch(pub BTreeMap<String, CellPatch>);

/// One event's switches in a change; an absent one stays as it is.
#[derive(ToSchema)]
pub struct CellPatch {
    pub in_app: Option<bool>,
    pub email: Option<bool>,
}

fn prefs(m: &BTreeMap<NotifyEvent, Cell>) -> Preferences {
    Preferences(
        m.iter()
            .map(|(e, c)| (e.as_str().to_string(), *c))
            .collect(),
    )
}

/// The caller's notification preferences
#[utoipa::path(
    get,
    path = "/api/me/preferences",
    tag = "notifications",
    responses(
        (status = 200, description = "The matrix", body = Preferences),
        AuthErrors,
    )
)]
async fn get_prefs(
    State(state): State<AppState>,
    Caller(me): Caller,
) -> ApiResult<Json<Preferences>> {
    Ok(Json(prefs(&state.store.preferences(&me).await?)))
}

/// Change notification preferences
///
/// Accepts any subset: `{"issue_opened": {"email": true}, …}`. Unknown
/// events or channels are refused, naming them, before anything changes.
#[utoipa::path(
    put,
    path = "/api/me/preferences",
    tag = "notifications",
    request_body = PreferencesPatch,
    responses(
        (status = 200, description = "The whole matrix after the change", body = Preferences),
        BodyErrors,
        AuthErrors,
    )
)]
async fn put_prefs(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Preferences>> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::unprocessable(
            "invalid_request",
            "expected an object keyed by event",
        ));
    };
    let mut changes = Vec::new();
    let mut unknown = Vec::new();
    for (key, cell) in obj {
        let Some(event) = NotifyEvent::parse(key) else {
            unknown.push(key.clone());
            continue;
        };
        let Some(cell) = cell.as_object() else {
            return Err(ApiError::unprocessable(
                "invalid_request",
                format!("`{key}` must be an object"),
            ));
        };
        let (mut in_app, mut email) = (None, None);
        for (channel, v) in cell {
            let Some(b) = v.as_bool() else {
                return Err(ApiError::unprocessable(
                    "invalid_request",
                    format!("`{key}.{channel}` must be true or false"),
                ));
            };
            match channel.as_str() {
                "in_app" => in_app = Some(b),
                "email" => email = Some(b),
                _ => unknown.push(format!("{key}.{channel}")),
            }
        }
        changes.push((event, in_app, email));
    }
    if !unknown.is_empty() {
        return Err(ApiError::unprocessable(
            "unknown_preference",
            format!("unknown events or channels: {}", unknown.join(", ")),
        ));
    }
    Ok(Json(prefs(
        &state.store.set_preferences(&me, &changes).await?,
    )))
}

/// Whether the caller watches an issue, and who does.
#[derive(Serialize, ToSchema)]
struct Watching {
    issue_id: i64,
    watching: bool,
    /// Staff ids of every watcher.
    watchers: Vec<i64>,
}

async fn set_watch(state: &AppState, me: &Staff, id: i64, on: bool) -> ApiResult<Json<Watching>> {
    let watchers = state.store.watch(id, me.id, on).await?;
    Ok(Json(Watching {
        issue_id: id,
        watching: on,
        watchers,
    }))
}

/// Watch an issue
///
/// Watchers get the assignee's notifications without owning the issue.
#[utoipa::path(
    post,
    path = "/api/issues/{id}/watch",
    tag = "notifications",
    params(("id" = i64, Path, description = "Issue id")),
    responses(
        (status = 200, description = "Now watching", body = Watching),
        NotFoundError,
        AuthErrors,
    )
)]
async fn watch(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Watching>> {
    set_watch(&state, &me, id, true).await
}

/// Stop watching an issue
#[utoipa::path(
    delete,
    path = "/api/issues/{id}/watch",
    tag = "notifications",
    params(("id" = i64, Path, description = "Issue id")),
    responses(
        (status = 200, description = "No longer watching", body = Watching),
        NotFoundError,
        AuthErrors,
    )
)]
async fn unwatch(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Watching>> {
    set_watch(&state, &me, id, false).await
}

/// Turns a log row into the SSE event the caller sees, if any.
async fn materialise(state: &AppState, me: &Staff, row: &StreamRow) -> Option<Event> {
    let data = match row.kind.as_str() {
        "issue" => json!(state.store.issue(row.issue_id?, me.id).await.ok()?),
        "message" => json!(state.store.message(row.ref_id?).await.ok()?),
        "notification" if row.staff_id == Some(me.id) => {
            json!(state.store.notification(row.ref_id?).await.ok()??)
        }
        _ => return None,
    };
    Event::default()
        .id(row.id.to_string())
        .event(row.kind.clone())
        .json_data(data)
        .ok()
}

/// Sends every row after `last` from the database, noting each id in
/// `sent`; returns the new `last`, or `None` when the client went away.
async fn replay(
    state: &AppState,
    me: &Staff,
    mut last: i64,
    out: &mpsc::Sender<Event>,
    sent: &mut HashSet<i64>,
) -> Option<i64> {
    loop {
        let rows = state
            .store
            .stream_since(last, Some(me.id), 200)
            .await
            .ok()?;
        if rows.is_empty() {
            return Some(last);
        }
        for row in rows {
            last = row.id;
            if !sent.insert(row.id) {
                continue;
            }
            if let Some(ev) = materialise(state, me, &row).await {
                out.send(ev).await.ok()?;
            }
        }
    }
}

/// Live rows taken at once by one stream connection.
const STREAM_BATCH: usize = 64;
/// How often a live stream checks that its credential still holds.
const STREAM_AUTH_RECHECK: Duration = Duration::from_secs(3);
/// Events of one batch built concurrently (each is a database read).
const STREAM_CONCURRENCY: usize = 8;

/// Live events for the caller (Server-Sent Events)
///
/// `event: issue` (data: the issue as in the list), `event: message` (data:
/// the message), `event: notification` (data: the notification). Each event
/// has an `id:`; reconnecting with `Last-Event-ID` replays what was missed.
#[utoipa::path(
    get,
    path = "/api/stream",
    tag = "notifications",
    params(
        ("Last-Event-ID" = Option<i64>, Header, description = "The last event id seen: replays everything after it"),
        ("last_event_id" = Option<i64>, Query, description = "The same for a first connection (a browser's EventSource cannot set the header): the web page passes the event id it was rendered at"),
    ),
    responses(
        (status = 200, description = "An endless `text/event-stream`", content_type = "text/event-stream", body = String),
        AuthErrors,
    )
)]
async fn stream(
    State(state): State<AppState>,
    auth: StreamCaller,
    headers: HeaderMap,
    query: axum::extract::RawQuery,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let StreamCaller {
        staff: me,
        credential,
    } = auth;
    // The header wins: EventSource sends it on a reconnect, with the id it
    // saw last, while the query still holds the id the page started from.
    let from_query = query.0.as_deref().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "last_event_id")
            .and_then(|(_, v)| v.trim().parse::<i64>().ok())
    });
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(from_query);
    // Subscribe before reading the head, so nothing falls in between.
    let mut live = state.hub.subscribe();
    let start = last_seen.unwrap_or_else(|| state.hub.head());
    let (tx, rx) = mpsc::channel::<Event>(256);
    let shutdown = state.shutdown.clone();
    let state_for_auth = state.clone();
    let staff_id = me.id;
    tokio::spawn(async move {
        let work = async {
            // The hub broadcasts each id once, but not always in id order
            // (see `notify::stream`), so live rows are checked against what
            // the replay sent rather than against the highest id.
            let mut sent = HashSet::new();
            let mut last = replay(&state, &me, start, &tx, &mut sent).await?;
            loop {
                // Take what the hub has queued (up to a batch) and build
                // the events concurrently, in order: one database read per
                // event, so under load a one-at-a-time loop falls behind.
                let mut rows = Vec::new();
                let mut lagged = false;
                match live.recv().await {
                    Ok(row) => rows.push(row),
                    Err(broadcast::error::RecvError::Lagged(_)) => lagged = true,
                    Err(broadcast::error::RecvError::Closed) => return None::<()>,
                }
                while !lagged && rows.len() < STREAM_BATCH {
                    match live.try_recv() {
                        Ok(row) => rows.push(row),
                        Err(broadcast::error::TryRecvError::Lagged(_)) => lagged = true,
                        Err(_) => break,
                    }
                }
                rows.retain(|row| {
                    // Each replayed id comes live at most once more.
                    !sent.remove(&row.id) && (row.staff_id.is_none() || row.staff_id == Some(me.id))
                });
                last = rows.iter().map(|r| r.id).fold(last, i64::max);
                let builds = rows.into_iter().map(|row| {
                    let (state, me) = (state.clone(), me.clone());
                    async move { materialise(&state, &me, &row).await }
                });
                let events: Vec<Option<Event>> = futures::stream::iter(builds)
                    .buffered(STREAM_CONCURRENCY)
                    .collect()
                    .await;
                for ev in events.into_iter().flatten() {
                    tx.send(ev).await.ok()?;
                }
                // Fell behind the hub: catch up from the database.
                if lagged {
                    last = replay(&state, &me, last, &tx, &mut sent).await?;
                }
            }
        };
        // The stream authenticated once, at its start; check again every
        // few seconds, so deactivation, sign-out or a revoked token ends it.
        let recheck = async {
            loop {
                tokio::time::sleep(STREAM_AUTH_RECHECK).await;
                if !credential.still_valid(&state_for_auth).await {
                    return;
                }
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = work => {}
            _ = recheck => {
                tracing::info!(staff_id, "live stream closed: its credential is no longer valid");
            }
        }
    });
    let events = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|ev| (Ok(ev), rx))
    });
    Sse::new(events).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    )
}
