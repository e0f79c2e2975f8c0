//! The Broadcasts page (admins): compose one announcement to chosen or
//! all customers, list what was sent, and follow one broadcast's progress
//! per recipient (SPEC §4 `POST /api/broadcasts`, `GET /api/broadcasts/{id}`).
//!
//! Sending goes through `http::broadcasts::send`, the function the API
//! handler calls, so the rules (a message, at least one recipient, unknown
//! customers refused, opted-out contacts skipped, the rate limit) are
//! decided there once. The page only turns its form into that call:
//! `All customers` or a comma-separated `Customer ids` list, not both.
//!
//! A broadcast's page is rendered complete by the server; while recipients
//! are pending, `static/js/admin.js` polls `GET /api/broadcasts/{id}` every
//! two seconds (the session cookie reads the API) and updates the counts
//! and rows in place with text only, stopping once none is pending.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use super::{refusal, require_admin, when};
use crate::http::AppState;
use crate::store::BroadcastView;
use crate::web::page::{Chrome, PageError, render, render_status};
use crate::web::session::{Viewer, WebForm};

/// Broadcasts a page of the list shows.
const PAGE: i64 = 25;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/broadcasts", get(show).post(send))
        .route("/broadcasts/{id}", get(detail))
}

/// The four outcomes, in the order the page shows them: the store's
/// status key and the word a person reads.
const OUTCOMES: [(&str, &str); 4] = [
    ("sent", "Sent"),
    ("skipped", "Skipped"),
    ("failed", "Failed"),
    ("queued", "Pending"),
];

/// A recipient status as the page words it (`queued` is still pending).
fn outcome_word(status: &str) -> &str {
    if status == "queued" {
        "pending"
    } else {
        status
    }
}

/// One count of a broadcast's progress.
struct Count {
    key: &'static str,
    label: &'static str,
    n: i64,
}

fn counts(b: &BroadcastView) -> Vec<Count> {
    OUTCOMES
        .into_iter()
        .map(|(key, label)| Count {
            key,
            label,
            n: b.counts.get(key).copied().unwrap_or(0),
        })
        .collect()
}

/// One broadcast in the list.
struct Item {
    id: i64,
    preview: String,
    sent_at: String,
    by: String,
    total: i64,
    counts: Vec<Count>,
    sending: bool,
}

/// What the compose form held, kept when it was refused.
#[derive(Deserialize, Default)]
struct ComposeForm {
    #[serde(default)]
    body: String,
    #[serde(default)]
    subject: String,
    /// The `All customers` checkbox: present when checked.
    all: Option<String>,
    #[serde(default)]
    customer_ids: String,
}

#[derive(Template)]
#[template(path = "broadcasts.html")]
struct BroadcastsPage {
    chrome: Chrome,
    items: Vec<Item>,
    older: Option<i64>,
    paged: bool,
    error: Option<String>,
    form: ComposeForm,
}

#[derive(Deserialize)]
struct Paging {
    before: Option<String>,
}

/// The first line of a message, shortened for the list.
fn preview(body: &str) -> String {
    let line = body.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut s: String = line.chars().take(80).collect();
    if s.len() < line.len() || body.trim().lines().nth(1).is_some() {
        s.push('…');
    }
    s
}

async fn list_page(
    state: &AppState,
    viewer: &Viewer,
    before: Option<i64>,
    status: StatusCode,
    error: Option<String>,
    form: ComposeForm,
) -> Result<Response, PageError> {
    let chrome = Chrome::load(state, viewer, "broadcasts").await?;
    let found = state.store.list_broadcasts(before, PAGE).await?;
    let staff = state.store.list_staff().await?;
    let older = (found.len() as i64 == PAGE)
        .then(|| found.last().map(|b| b.id))
        .flatten();
    let items = found
        .iter()
        .map(|b| Item {
            id: b.id,
            preview: preview(&b.body),
            sent_at: when(&b.created_at),
            by: staff
                .iter()
                .find(|s| s.id == b.created_by)
                .map_or_else(|| format!("staff #{}", b.created_by), |s| s.name.clone()),
            total: b.total,
            counts: counts(b),
            sending: b.status == "sending",
        })
        .collect();
    Ok(render_status(
        status,
        &BroadcastsPage {
            chrome,
            items,
            older,
            paged: before.is_some(),
            error,
            form,
        },
    ))
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
                .map_err(|_| PageError::bad_request("That page of the list does not exist."))?,
        ),
    };
    list_page(
        &state,
        &viewer,
        before,
        StatusCode::OK,
        None,
        ComposeForm::default(),
    )
    .await
}

/// The recipients the form asks for: `None` for every customer, else the
/// ids typed, in order (`#12` is read as 12). A sentence when it cannot.
fn recipients(form: &ComposeForm) -> Result<Option<Vec<i64>>, String> {
    let all = form.all.is_some();
    let typed: Vec<&str> = form
        .customer_ids
        .split([',', ' ', '\n', '\r', '\t', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    match (all, typed.is_empty()) {
        (true, true) => Ok(None),
        (true, false) => Err("Choose either All customers or customer ids, not both.".to_string()),
        (false, true) => Err("Choose All customers or give customer ids.".to_string()),
        (false, false) => typed
            .into_iter()
            .map(|s| {
                s.trim_start_matches('#')
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        format!("“{s}” is not a customer id. Give numbers separated by commas.")
                    })
            })
            .collect::<Result<Vec<i64>, String>>()
            .map(Some),
    }
}

async fn send(
    State(state): State<AppState>,
    f: WebForm<ComposeForm>,
) -> Result<Response, PageError> {
    require_admin(&f.viewer)?;
    let refused = |status: StatusCode, sentence: String, form: ComposeForm| {
        list_page(&state, &f.viewer, None, status, Some(sentence), form)
    };
    let customers = match recipients(&f.form) {
        Ok(c) => c,
        Err(sentence) => {
            return refused(StatusCode::UNPROCESSABLE_ENTITY, sentence, f.form).await;
        }
    };
    let sent = crate::http::broadcasts::send(
        &state,
        &f.viewer.staff,
        &f.form.body,
        Some(f.form.subject.as_str()),
        customers.as_deref(),
    )
    .await;
    match sent {
        Ok(view) => Ok(Redirect::to(&format!("/broadcasts/{}", view.id)).into_response()),
        Err(e) => {
            let e = refusal(
                e,
                &[
                    ("body", "the message"),
                    ("customer_ids", "the customer ids"),
                ],
            );
            refused(e.status, e.message, f.form).await
        }
    }
}

/// One recipient row.
struct Recipient {
    id: i64,
    customer_id: i64,
    channel: String,
    contact: String,
    outcome: String,
    error: String,
}

#[derive(Template)]
#[template(path = "broadcast.html")]
struct BroadcastPage {
    chrome: Chrome,
    id: i64,
    body: String,
    subject: Option<String>,
    sent_at: String,
    by: String,
    total: i64,
    counts: Vec<Count>,
    sending: bool,
    recipients: Vec<Recipient>,
}

async fn detail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    require_admin(&viewer)?;
    let chrome = Chrome::load(&state, &viewer, "broadcasts").await?;
    let b = state.store.broadcast(id).await?;
    let by = match state.store.get_staff(b.created_by).await {
        Ok(s) => s.name,
        Err(_) => format!("staff #{}", b.created_by),
    };
    let recipients = b
        .recipients
        .iter()
        .map(|r| Recipient {
            id: r.id,
            customer_id: r.customer_id,
            channel: r.channel.clone().unwrap_or_default(),
            contact: r.contact.clone().unwrap_or_default(),
            outcome: outcome_word(&r.status).to_string(),
            error: r.error.clone().unwrap_or_default(),
        })
        .collect();
    Ok(render(&BroadcastPage {
        chrome,
        id: b.id,
        counts: counts(&b),
        sending: b.status == "sending",
        sent_at: when(&b.created_at),
        total: b.total,
        subject: b.subject,
        body: b.body,
        by,
        recipients,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(all: bool, ids: &str) -> ComposeForm {
        ComposeForm {
            all: all.then(|| "on".to_string()),
            customer_ids: ids.to_string(),
            ..ComposeForm::default()
        }
    }

    #[test]
    fn recipients_are_all_or_a_list_never_both_or_neither() {
        assert_eq!(recipients(&form(true, " ")), Ok(None));
        assert_eq!(recipients(&form(false, "3, #5,7")), Ok(Some(vec![3, 5, 7])));
        assert!(recipients(&form(true, "3")).is_err());
        assert!(recipients(&form(false, "")).is_err());
        assert!(recipients(&form(false, "3, x")).is_err());
        assert!(recipients(&form(false, "-2")).is_err());
    }

    #[test]
    fn previews_are_one_short_line() {
        assert_eq!(preview("Closed Monday"), "Closed Monday");
        assert_eq!(preview("\nClosed\nMonday"), "Closed…");
        assert_eq!(preview(&"a".repeat(100)).chars().count(), 81);
    }
}
