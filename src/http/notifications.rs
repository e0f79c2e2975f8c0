//! In-app notifications, preferences, watchers and the live stream (SPEC §4,
//! §5).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, mpsc};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::domain::notify::NotifyEvent;
use crate::store::{Staff, StreamRow};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/notifications", get(list))
        .route("/api/notifications/read", post(mark_read))
        .route("/api/me/preferences", get(get_prefs).put(put_prefs))
        .route("/api/issues/{id}/watch", post(watch).delete(unwatch))
        .route("/api/stream", get(stream))
}

async fn list(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let unread = match q.get("unread").map(String::as_str) {
        None | Some("") | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "`unread` must be true or false",
            ));
        }
    };
    let limit = match q.get("limit") {
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
        .get("cursor")
        .or(q.get("before"))
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
    Ok(Json(
        json!({ "notifications": list, "unread_count": unread_count, "next_cursor": next }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadBody {
    ids: Option<Vec<i64>>,
    all: Option<bool>,
}

async fn mark_read(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiJson(body): ApiJson<ReadBody>,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!({ "unread_count": unread })))
}

fn prefs_json(m: &std::collections::BTreeMap<NotifyEvent, crate::domain::notify::Cell>) -> Value {
    let mut out = Map::new();
    for (e, c) in m {
        out.insert(
            e.as_str().to_string(),
            json!({ "in_app": c.in_app, "email": c.email }),
        );
    }
    Value::Object(out)
}

async fn get_prefs(State(state): State<AppState>, Caller(me): Caller) -> ApiResult<Json<Value>> {
    Ok(Json(prefs_json(&state.store.preferences(&me).await?)))
}

/// Accepts any subset: `{"issue_opened": {"email": true}, …}`. Unknown
/// events or channels are refused, naming them, before anything changes.
async fn put_prefs(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(prefs_json(
        &state.store.set_preferences(&me, &changes).await?,
    )))
}

async fn watch(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let watchers = state.store.watch(id, me.id, true).await?;
    Ok(Json(
        json!({ "issue_id": id, "watching": true, "watchers": watchers }),
    ))
}

async fn unwatch(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let watchers = state.store.watch(id, me.id, false).await?;
    Ok(Json(
        json!({ "issue_id": id, "watching": false, "watchers": watchers }),
    ))
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

/// `GET /api/stream`: Server-Sent Events for the caller.
async fn stream(
    State(state): State<AppState>,
    Caller(me): Caller,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    // Subscribe before reading the head, so nothing falls in between.
    let mut live = state.hub.subscribe();
    let start = last_seen.unwrap_or_else(|| state.hub.head());
    let (tx, rx) = mpsc::channel::<Event>(256);
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let work = async {
            // The hub broadcasts each id once, but not always in id order
            // (see `notify::stream`), so live rows are checked against what
            // the replay sent rather than against the highest id.
            let mut sent = HashSet::new();
            let mut last = replay(&state, &me, start, &tx, &mut sent).await?;
            loop {
                match live.recv().await {
                    Ok(row) => {
                        // Each replayed id comes live at most once more.
                        if sent.remove(&row.id) {
                            continue;
                        }
                        last = last.max(row.id);
                        let visible = row.staff_id.is_none() || row.staff_id == Some(me.id);
                        if visible && let Some(ev) = materialise(&state, &me, &row).await {
                            tx.send(ev).await.ok()?;
                        }
                    }
                    // Fell behind the hub: catch up from the database.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        last = replay(&state, &me, last, &tx, &mut sent).await?;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None::<()>,
                }
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = work => {}
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
