//! Settings (SPEC §9 "Settings"): the §5 notification matrix as
//! checkboxes, and changing one's own password.
//!
//! The matrix is read and written through the same store calls as
//! `GET`/`PUT /api/me/preferences` (`Store::preferences`,
//! `Store::set_preferences`), and its rows come from `NotifyEvent::ALL`,
//! the list the API keys by, so a new event shows up here without touching
//! this file. A browser leaves an unchecked box out of the form, so the
//! save sends every cell: a box that is absent is off. Each checkbox's
//! accessible name is `<event> <channel>` with the API's keys
//! (`issue_opened email`); the event half is visually hidden because the
//! row header already shows it.
//!
//! A password change wants the current password, checked like a sign-in:
//! a wrong one counts as a failed sign-in of the account, and a locked
//! account cannot change its password either, so a borrowed session
//! cannot be used to guess the password at leisure. The new one passes
//! `domain::signin::check_new_password` (the welcome link's rule); storing
//! it keeps this session and ends every other one.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::page::{Chrome, PageError, render_status};
use super::session::{ClientAddr, Viewer, WebForm};
use crate::domain::notify::NotifyEvent;
use crate::domain::signin::{self as rules, Throttle};
use crate::http::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings", get(show).post(save))
        .route("/settings/password", post(change_password))
}

/// One row of the matrix as the page shows it.
struct PrefRow {
    /// The API's key, e.g. `issue_opened`.
    event: &'static str,
    /// What it means, for a person.
    hint: &'static str,
    in_app: bool,
    email: bool,
}

/// A sentence for the page: confirmation (`role="status"`) or refusal
/// (`role="alert"`).
#[derive(Default)]
struct Said {
    ok: Option<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    chrome: Chrome,
    rows: Vec<PrefRow>,
    prefs: Said,
    password: Said,
}

/// What each event of §5 means to the person choosing.
fn hint(event: NotifyEvent) -> &'static str {
    match event {
        NotifyEvent::IssueOpened => "A new issue is opened.",
        NotifyEvent::CustomerReplied => "The customer writes on an issue you own or watch.",
        NotifyEvent::UnassignedActivity => "A message arrives on an unassigned issue.",
        NotifyEvent::IssueAssigned => "Someone assigns an issue to you.",
        NotifyEvent::IssueClosed => "Someone else closes an issue you own or watch.",
        NotifyEvent::CommentAdded => "A colleague comments on an issue you own or watch.",
        NotifyEvent::IssueEscalated => "An issue waits unassigned too long (admins).",
    }
}

/// Renders the page with the viewer's current matrix.
async fn page(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    prefs: Said,
    password: Said,
) -> Result<Response, PageError> {
    let chrome = Chrome::load(state, viewer, "settings").await?;
    let matrix = state.store.preferences(&viewer.staff).await?;
    let rows = NotifyEvent::ALL
        .into_iter()
        .map(|e| {
            let (in_app, email) = matrix
                .get(&e)
                .map_or((false, false), |c| (c.in_app, c.email));
            PrefRow {
                event: e.as_str(),
                hint: hint(e),
                in_app,
                email,
            }
        })
        .collect();
    Ok(render_status(
        status,
        &SettingsPage {
            chrome,
            rows,
            prefs,
            password,
        },
    ))
}

async fn show(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    page(
        &state,
        &viewer,
        StatusCode::OK,
        Said::default(),
        Said::default(),
    )
    .await
}

/// The checkbox field name of one cell: `<event>.<channel>`.
fn field(event: NotifyEvent, channel: &str) -> String {
    format!("{}.{channel}", event.as_str())
}

/// The whole matrix as the form left it: a checked box is present, an
/// unchecked one absent (so off).
fn changes_from(form: &HashMap<String, String>) -> Vec<(NotifyEvent, Option<bool>, Option<bool>)> {
    NotifyEvent::ALL
        .into_iter()
        .map(|e| {
            (
                e,
                Some(form.contains_key(&field(e, "in_app"))),
                Some(form.contains_key(&field(e, "email"))),
            )
        })
        .collect()
}

async fn save(
    State(state): State<AppState>,
    f: WebForm<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let changes = changes_from(&f.form);
    state
        .store
        .set_preferences(&f.viewer.staff, &changes)
        .await?;
    tracing::info!(
        staff_id = f.viewer.staff.id,
        "notification preferences saved"
    );
    let saved = Said {
        ok: Some("Saved.".into()),
        error: None,
    };
    page(&state, &f.viewer, StatusCode::OK, saved, Said::default()).await
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    repeat: String,
}

async fn change_password(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    f: WebForm<PasswordForm>,
) -> Result<Response, PageError> {
    let viewer = &f.viewer;
    let refuse = |status: StatusCode, sentence: &str| {
        let said = Said {
            ok: None,
            error: Some(sentence.to_string()),
        };
        page(&state, viewer, status, Said::default(), said)
    };
    let facts = state
        .store
        .sign_in_facts(&viewer.staff.email, client.as_deref())
        .await?;
    if rules::throttle(facts.account_failures, facts.client_failures) == Throttle::Locked {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong passwords. Wait 15 minutes, then try again.",
        )
        .await;
    }
    let hash = facts.staff.and_then(|(_, h)| h);
    if f.form.current.is_empty() || !crate::password::verify(f.form.current.clone(), hash).await {
        state
            .store
            .record_sign_in_failure(&viewer.staff.email, client.as_deref())
            .await?;
        tracing::info!(
            staff_id = viewer.staff.id,
            "password change: wrong current password"
        );
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Your current password is not right.",
        )
        .await;
    }
    if let Err(e) = rules::check_new_password(&f.form.password, &f.form.repeat) {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()).await;
    }
    let new_hash = crate::password::hash(f.form.password.clone())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "hashing a password");
            PageError::internal()
        })?;
    state
        .store
        .set_password(viewer.staff.id, &new_hash, Some(&viewer.session_id))
        .await?;
    tracing::info!(staff_id = viewer.staff.id, "password changed");
    let said = Said {
        ok: Some("Your password is changed. Your other sessions were signed out.".into()),
        error: None,
    };
    page(&state, viewer, StatusCode::OK, Said::default(), said).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_box_is_off_and_every_cell_is_sent() {
        let mut form = HashMap::new();
        form.insert("issue_opened.email".to_string(), "on".to_string());
        form.insert("csrf".to_string(), "x".to_string());
        let changes = changes_from(&form);
        assert_eq!(changes.len(), NotifyEvent::ALL.len());
        for (e, in_app, email) in changes {
            assert_eq!(in_app, Some(false));
            assert_eq!(email, Some(e == NotifyEvent::IssueOpened));
        }
    }
}
