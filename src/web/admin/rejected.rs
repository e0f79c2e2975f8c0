//! The Rejected page (admins): the rejected-inbound log, newest first —
//! mail that could not be ingested and webhooks that failed verification
//! (SPEC §3.2, §3.3), read with `Store::list_rejected` as
//! `GET /api/rejected` reads it, and paged the same way (`before` = the
//! last id shown).
//!
//! The details are whatever the ingest path recorded (a JSON object);
//! they are shown as `key: value` text, escaped like everything else,
//! because they can hold what a stranger sent (a sender, a subject).

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::Value;

use super::{require_admin, when};
use crate::http::AppState;
use crate::web::page::{Chrome, PageError, render};
use crate::web::session::Viewer;

/// Rows a page shows (the API's default page size).
const PAGE: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new().route("/rejected", get(show))
}

struct Row {
    kind: String,
    reason: String,
    received: String,
    received_at: String,
    /// "×N, last …" when repeats were grouped into this row.
    repeats: Option<String>,
    details: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "rejected.html")]
struct RejectedPage {
    chrome: Chrome,
    rows: Vec<Row>,
    /// The `before` of the next (older) page, if there is one.
    older: Option<i64>,
    /// Whether this is a later page (so "Newest" is offered).
    paged: bool,
}

#[derive(Deserialize)]
struct Paging {
    before: Option<String>,
}

/// A recorded detail object as `key: value` lines.
fn details(v: &Value) -> Vec<(String, String)> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match v {
        Value::Null => Vec::new(),
        Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), text(v)))
            .collect(),
        other => vec![(String::new(), text(other))],
    }
}

async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<Paging>,
) -> Result<Response, PageError> {
    require_admin(&viewer)?;
    let before = match q.before.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse::<i64>()
                .map_err(|_| PageError::bad_request("That page of the log does not exist."))?,
        ),
    };
    let chrome = Chrome::load(&state, &viewer, "rejected").await?;
    let found = state.store.list_rejected(before, PAGE).await?;
    let older = (found.len() as i64 == PAGE)
        .then(|| found.last().map(|r| r.id))
        .flatten();
    let rows = found
        .into_iter()
        .map(|r| Row {
            received: when(&r.received_at),
            received_at: r.received_at.to_rfc3339(),
            repeats: (r.repeats > 1).then(|| {
                let last = r.last_received_at.unwrap_or(r.received_at);
                format!("×{}, last {}", r.repeats, when(&last))
            }),
            details: details(&r.detail),
            kind: r.kind,
            reason: r.reason,
        })
        .collect();
    Ok(render(&RejectedPage {
        chrome,
        rows,
        older,
        paged: before.is_some(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_read_as_key_value_text() {
        let v = serde_json::json!({"path": "/webhooks/twilio/sms", "size": 12, "none": null});
        assert_eq!(
            details(&v),
            vec![
                ("path".to_string(), "/webhooks/twilio/sms".to_string()),
                ("size".to_string(), "12".to_string()),
            ]
        );
        assert!(details(&Value::Null).is_empty());
    }
}
