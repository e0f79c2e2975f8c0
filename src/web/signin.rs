//! Signing in and out, and choosing a password through a welcome link
//! (SPEC §9, "Signing in").
//!
//! Wrong credentials get one generic sentence whatever was wrong (unknown
//! email, wrong password, no password yet, deactivated), and the answer
//! takes the same Argon2 time in every case. Failures are counted per
//! account and per client address in the database; the lockout decision is
//! `domain::signin::throttle`.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::page::{PageError, render, render_status};
use super::session::{self, ClientAddr, WebForm};
use crate::domain::signin::{self as rules, Throttle};
use crate::http::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/welcome/{code}", get(welcome_page).post(welcome))
}

const WRONG: &str = "Wrong email or password.";
const LOCKED: &str = "Too many failed sign-ins. Wait 15 minutes, then try again.";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    css: &'static str,
    email: &'a str,
    next: &'a str,
    error: Option<&'a str>,
    notice: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct NextQuery {
    next: Option<String>,
    done: Option<String>,
}

/// Only a path on this site: never `//evil.example` or `https://…`.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Result<Response, PageError> {
    if session::session_staff(&state, &headers).await?.is_some() {
        return Ok(Redirect::to(safe_next(q.next.as_deref())).into_response());
    }
    let notice = match q.done.as_deref() {
        Some("signed-out") => Some("You are signed out."),
        _ => None,
    };
    Ok(render(&LoginPage {
        css: super::assets::url("app.css"),
        email: "",
        next: safe_next(q.next.as_deref()),
        error: None,
        notice,
    }))
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    // No session yet, so no token: the origin check is the CSRF defence
    // here (a forged sign-in would only sign the victim in as the forger).
    if !session::origin_ok(&state, &headers) {
        return Err(PageError::csrf());
    }
    let next = safe_next(form.next.as_deref());
    let email = form.email.trim().to_lowercase();
    let again = |status: StatusCode, error: &str| {
        render_status(
            status,
            &LoginPage {
                css: super::assets::url("app.css"),
                email: &email,
                next,
                error: Some(error),
                notice: None,
            },
        )
    };
    if email.is_empty() || form.password.is_empty() || email.len() > 320 {
        return Ok(again(StatusCode::UNAUTHORIZED, WRONG));
    }
    let facts = state.store.sign_in_facts(&email, client.as_deref()).await?;
    if rules::throttle(facts.account_failures, facts.client_failures) == Throttle::Locked {
        tracing::warn!(
            client = client.as_deref().unwrap_or("-"),
            "sign-in refused: too many failures"
        );
        state.metrics.sign_in("locked");
        return Ok(again(StatusCode::TOO_MANY_REQUESTS, LOCKED));
    }
    let (staff, hash) = match facts.staff {
        Some((s, h)) if s.active => (Some(s), h),
        _ => (None, None),
    };
    let ok = crate::password::verify(form.password, hash).await;
    match staff.filter(|_| ok) {
        Some(staff) => {
            let (id, _csrf) = state.store.create_session(staff.id, &staff.email).await?;
            tracing::info!(staff_id = staff.id, "signed in");
            state.metrics.sign_in("ok");
            let mut resp = Redirect::to(next).into_response();
            resp.headers_mut()
                .insert(header::SET_COOKIE, session::set_cookie(&state, &id));
            Ok(resp)
        }
        None => {
            state
                .store
                .record_sign_in_failure(&email, client.as_deref())
                .await?;
            tracing::info!(client = client.as_deref().unwrap_or("-"), "sign-in failed");
            state.metrics.sign_in("failed");
            Ok(again(StatusCode::UNAUTHORIZED, WRONG))
        }
    }
}

#[derive(Deserialize)]
struct Empty {}

async fn logout(State(state): State<AppState>, f: WebForm<Empty>) -> Result<Response, PageError> {
    state.store.end_session(&f.viewer.session_id).await?;
    tracing::info!(staff_id = f.viewer.staff.id, "signed out");
    let mut resp = Redirect::to("/login?done=signed-out").into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie());
    Ok(resp)
}

#[derive(Template)]
#[template(path = "welcome.html")]
struct WelcomePage<'a> {
    css: &'static str,
    name: &'a str,
    email: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    css: &'static str,
    title: &'a str,
    message: &'a str,
}

fn link_gone() -> Response {
    render_status(
        StatusCode::GONE,
        &MessagePage {
            css: super::assets::url("app.css"),
            title: "Link no longer valid",
            message: "This link has expired or was already used. Ask an admin for a new one.",
        },
    )
}

async fn welcome_page(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Response, PageError> {
    let Some(staff) = state.store.welcome_staff(&code).await? else {
        return Ok(link_gone());
    };
    Ok(render(&WelcomePage {
        css: super::assets::url("app.css"),
        name: &staff.name,
        email: &staff.email,
        error: None,
    }))
}

#[derive(Deserialize)]
struct WelcomeForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    repeat: String,
}

async fn welcome(
    State(state): State<AppState>,
    Path(code): Path<String>,
    headers: HeaderMap,
    Form(form): Form<WelcomeForm>,
) -> Result<Response, PageError> {
    if !session::origin_ok(&state, &headers) {
        return Err(PageError::csrf());
    }
    let Some(staff) = state.store.welcome_staff(&code).await? else {
        return Ok(link_gone());
    };
    if let Err(e) = rules::check_new_password(&form.password, &form.repeat) {
        return Ok(render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &WelcomePage {
                css: super::assets::url("app.css"),
                name: &staff.name,
                email: &staff.email,
                error: Some(&e.to_string()),
            },
        ));
    }
    let hash = crate::password::hash(form.password).await.map_err(|e| {
        tracing::error!(error = %e, "hashing a password");
        PageError::internal()
    })?;
    // Used here, once: a second submit of the same link finds it gone.
    let Some(staff) = state.store.redeem_welcome(&code, &hash).await? else {
        return Ok(link_gone());
    };
    tracing::info!(
        staff_id = staff.id,
        "password chosen through a welcome link"
    );
    let (id, _) = state.store.create_session(staff.id, &staff.email).await?;
    let mut resp = Redirect::to("/").into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session::set_cookie(&state, &id));
    Ok(resp)
}

/// The one-time link a person uses to choose a password (`staff invite`,
/// the first start, the Staff page).
pub async fn invite_link(
    state_store: &crate::store::Store,
    public_url: &str,
    staff_id: i64,
) -> Result<String, crate::store::StoreError> {
    let code = state_store.create_welcome_link(staff_id).await?;
    Ok(format!(
        "{}/welcome/{code}",
        public_url.trim_end_matches('/')
    ))
}
