//! The Staff page (admins): who works here, adding people, changing role
//! and active state, one-time sign-in links and API tokens.
//!
//! Adding a person runs `http::people::check_new_staff` and
//! `Store::create_staff`, as `POST /api/staff` does; role and active
//! changes go through `Store::update_staff`, which refuses to leave the
//! team without an active admin (the `last_admin` rule of the API).
//!
//! Unlike the API, adding someone here does not mint an API token: a
//! person added from the page signs in with the one-time link shown
//! (`web::signin::invite_link`), and `Create token` is one click away for
//! those who script. A link or token is shown once, in the answer to the
//! post that made it, and never stored in the clear. When SMTP is
//! configured the link is also emailed to the person, queued in the
//! outbox like a digest (a plain, automatically generated email).

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::{refusal, require_admin, when};
use crate::domain::Role;
use crate::http::AppState;
use crate::store::Staff;
use crate::web::page::{Chrome, PageError, render_status};
use crate::web::session::{Viewer, WebForm};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/staff", get(show).post(add))
        .route("/staff/{id}/role", post(set_role))
        .route("/staff/{id}/active", post(set_active))
        .route("/staff/{id}/invite", post(invite))
        .route("/staff/{id}/token", post(token))
}

/// One person as the table shows them.
struct Row {
    id: i64,
    name: String,
    email: String,
    role: &'static str,
    is_admin: bool,
    active: bool,
    since: String,
    is_me: bool,
}

/// Something made by the last post, shown this once.
struct Shown {
    /// The sentence above it.
    text: String,
    /// `Sign-in link` or `API token`.
    what: &'static str,
    secret: String,
}

/// What the add form held, kept when it was refused.
#[derive(Deserialize, Default)]
struct AddForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

#[derive(Template)]
#[template(path = "staff.html")]
struct StaffPage {
    chrome: Chrome,
    rows: Vec<Row>,
    notice: Option<String>,
    shown: Option<Shown>,
    error: Option<String>,
    add: AddForm,
}

/// What a post leaves on the page.
#[derive(Default)]
struct Outcome {
    status: Option<StatusCode>,
    notice: Option<String>,
    shown: Option<Shown>,
    error: Option<String>,
    add: AddForm,
}

impl Outcome {
    fn refused(e: PageError) -> Outcome {
        Outcome {
            status: Some(e.status),
            error: Some(e.message),
            ..Outcome::default()
        }
    }
}

async fn page(state: &AppState, viewer: &Viewer, o: Outcome) -> Result<Response, PageError> {
    let chrome = Chrome::load(state, viewer, "staff").await?;
    let rows = state
        .store
        .list_staff()
        .await?
        .into_iter()
        .map(|s| Row {
            id: s.id,
            is_me: s.id == viewer.staff.id,
            role: s.role.as_str(),
            is_admin: s.role == Role::Admin,
            active: s.active,
            since: when(&s.created_at),
            name: s.name,
            email: s.email,
        })
        .collect();
    Ok(render_status(
        o.status.unwrap_or(StatusCode::OK),
        &StaffPage {
            chrome,
            rows,
            notice: o.notice,
            shown: o.shown,
            error: o.error,
            add: o.add,
        },
    ))
}

async fn show(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    require_admin(&viewer)?;
    page(&state, &viewer, Outcome::default()).await
}

/// A fresh one-time sign-in link for `staff`, emailed too when SMTP is
/// configured; the sentence says which.
async fn link_for(state: &AppState, staff: &Staff, lead: &str) -> Result<Shown, PageError> {
    let link =
        crate::web::signin::invite_link(&state.store, &state.config.server.public_url, staff.id)
            .await?;
    let mut text = format!(
        "{lead} Give {} this sign-in link; it works once, for 24 hours.",
        staff.name
    );
    if state.config.smtp.enabled() {
        let body = format!(
            "Hello {},\n\nan admin invited you to Switchboard, the support desk.\n\
             Choose your password here (the link works once, for 24 hours):\n\n{link}\n",
            staff.name
        );
        let mail = crate::store::StaffMail {
            staff_id: staff.id,
            to: staff.email.clone(),
            subject: "Your sign-in link for Switchboard".into(),
            body,
            unsubscribe: None,
        };
        state.store.enqueue_staff_mail(&[mail]).await?;
        state.outbox_wake.notify_one();
        text.push_str(&format!(" It was also emailed to {}.", staff.email));
    } else {
        text.push_str(" Email is not configured on this server, so it was not emailed.");
    }
    Ok(Shown {
        text,
        what: "Sign-in link",
        secret: link,
    })
}

async fn add(State(state): State<AppState>, f: WebForm<AddForm>) -> Result<Response, PageError> {
    require_admin(&f.viewer)?;
    let form = f.form;
    let role = Some(form.role.as_str()).filter(|r| !r.is_empty());
    let checked =
        crate::http::people::check_new_staff(&form.email, &form.name, role).map_err(|e| {
            refusal(
                e,
                &[
                    ("email", "the email"),
                    ("name", "the name"),
                    ("role", "the role"),
                ],
            )
        });
    let created = match checked {
        Ok((email, role)) => state
            .store
            .create_staff(email.as_str(), &form.name, role)
            .await
            .map_err(PageError::from),
        Err(e) => Err(e),
    };
    let staff = match created {
        Ok(s) => s,
        Err(e) => {
            let mut o = Outcome::refused(e);
            o.add = form;
            return page(&state, &f.viewer, o).await;
        }
    };
    tracing::info!(staff_id = staff.id, by = f.viewer.staff.id, role = %staff.role, "staff member added from the page");
    let lead = format!("{} was added as {}.", staff.name, staff.role.as_str());
    let shown = link_for(&state, &staff, &lead).await?;
    let o = Outcome {
        shown: Some(shown),
        ..Outcome::default()
    };
    page(&state, &f.viewer, o).await
}

#[derive(Deserialize)]
struct RoleForm {
    #[serde(default)]
    role: String,
}

async fn set_role(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    f: WebForm<RoleForm>,
) -> Result<Response, PageError> {
    require_admin(&f.viewer)?;
    let result = match crate::http::people::parse_role(&f.form.role) {
        Ok(role) => state
            .store
            .update_staff(id, None, Some(role), None)
            .await
            .map_err(PageError::from),
        Err(e) => Err(refusal(e, &[("role", "the role")])),
    };
    let o = match result {
        Ok(s) => {
            tracing::info!(staff_id = id, by = f.viewer.staff.id, role = %s.role, "role changed from the page");
            Outcome {
                notice: Some(format!("{} is now {}.", s.name, article(s.role))),
                ..Outcome::default()
            }
        }
        Err(e) => Outcome::refused(e),
    };
    page(&state, &f.viewer, o).await
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Admin => "an admin",
        Role::Agent => "an agent",
    }
}

#[derive(Deserialize)]
struct ActiveForm {
    #[serde(default)]
    active: String,
}

async fn set_active(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    f: WebForm<ActiveForm>,
) -> Result<Response, PageError> {
    require_admin(&f.viewer)?;
    let active = match f.form.active.as_str() {
        "true" => true,
        "false" => false,
        _ => {
            let e = PageError::bad_request("Choose Activate or Deactivate.");
            return page(&state, &f.viewer, Outcome::refused(e)).await;
        }
    };
    let o = match state.store.update_staff(id, Some(active), None, None).await {
        Ok(s) => {
            if !s.active {
                // Their sessions already stop working (a session needs
                // active staff); ending them means a later Activate does
                // not bring an old, perhaps forgotten, browser back.
                state.store.end_sessions_of(id, None).await?;
            }
            tracing::info!(
                staff_id = id,
                by = f.viewer.staff.id,
                active,
                "active state changed from the page"
            );
            let text = if s.active {
                format!("{} is active again.", s.name)
            } else {
                format!("{} is deactivated and signed out everywhere.", s.name)
            };
            Outcome {
                notice: Some(text),
                ..Outcome::default()
            }
        }
        Err(e) => Outcome::refused(PageError::from(e)),
    };
    page(&state, &f.viewer, o).await
}

#[derive(Deserialize)]
struct Empty {}

async fn invite(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    f: WebForm<Empty>,
) -> Result<Response, PageError> {
    require_admin(&f.viewer)?;
    let staff = state.store.get_staff(id).await?;
    if !staff.active {
        let e = PageError::new(
            StatusCode::CONFLICT,
            format!(
                "{} is deactivated and cannot sign in. Activate them first.",
                staff.name
            ),
        );
        return page(&state, &f.viewer, Outcome::refused(e)).await;
    }
    let shown = link_for(&state, &staff, "A new sign-in link is ready.").await?;
    tracing::info!(
        staff_id = id,
        by = f.viewer.staff.id,
        "sign-in link made from the page"
    );
    let o = Outcome {
        shown: Some(shown),
        ..Outcome::default()
    };
    page(&state, &f.viewer, o).await
}

async fn token(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    f: WebForm<Empty>,
) -> Result<Response, PageError> {
    require_admin(&f.viewer)?;
    let staff = state.store.get_staff(id).await?;
    let token = state.store.create_token(id).await?;
    tracing::info!(
        staff_id = id,
        by = f.viewer.staff.id,
        "token created from the page"
    );
    let o = Outcome {
        shown: Some(Shown {
            text: format!(
                "A new API token for {}. Copy it now: it is shown only this once.",
                staff.name
            ),
            what: "API token",
            secret: token,
        }),
        ..Outcome::default()
    };
    page(&state, &f.viewer, o).await
}
