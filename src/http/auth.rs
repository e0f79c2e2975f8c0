//! Bearer-token authentication as extractors.
//!
//! `Caller` is any active staff member; `Admin` additionally requires the
//! admin role and answers agents 403 `forbidden` (SPEC §4.1).
//!
//! The web page's session cookie also authorises `GET`s under `/api/`
//! (the page reads lists and `/api/stream` with it), never a state change:
//! those go through the page's own CSRF-checked routes (SPEC §9).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};

use super::AppState;
use super::error::ApiError;
use crate::domain::Role;
use crate::store::Staff;

/// The authenticated staff member making the request.
pub struct Caller(pub Staff);

/// An authenticated admin.
pub struct Admin(pub Staff);

/// What a request authenticated with, kept by long-lived responses (the
/// live stream) to check again later: a deactivated person, a signed-out
/// session, must stop receiving data (issue 11, item 8).
#[derive(Clone)]
pub enum Credential {
    Token(String),
    Session(String),
}

impl Credential {
    /// Whether the credential still authenticates an active staff member.
    /// A database error counts as still valid: an outage must not cut every
    /// stream at once (they end on their own if the outage persists).
    pub async fn still_valid(&self, state: &AppState) -> bool {
        let found = match self {
            Credential::Token(t) => state.store.authenticate(t).await.map(|s| s.is_some()),
            Credential::Session(id) => state.store.session(id).await.map(|s| s.is_some()),
        };
        found.unwrap_or(true)
    }
}

/// `Caller` plus the credential it was proven with.
pub struct StreamCaller {
    pub staff: Staff,
    pub credential: Credential,
}

impl FromRequestParts<AppState> for StreamCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Caller(staff) = Caller::from_request_parts(parts, state).await?;
        let credential = match bearer(parts) {
            Some(t) => Credential::Token(t.to_string()),
            None => Credential::Session(
                crate::web::session::session_cookie(&parts.headers).unwrap_or_default(),
            ),
        };
        Ok(StreamCaller { staff, credential })
    }
}

/// The bearer token of a request, if it has a well-formed one.
fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?
        .trim_start()
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return from_session(parts, state).await;
        }
        // The scheme is case-insensitive (RFC 9110 §11.1).
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        match state.store.authenticate(token).await? {
            Some(staff) => Ok(Caller(staff)),
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// A read-only API request authorised by the page's session cookie.
async fn from_session(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let safe = parts.method == Method::GET || parts.method == Method::HEAD;
    if !safe {
        return Err(ApiError::unauthorized());
    }
    match crate::web::session::session_staff(state, &parts.headers).await {
        Ok(Some((session, _))) => Ok(Caller(session.staff)),
        Ok(None) => Err(ApiError::unauthorized()),
        Err(_) => Err(ApiError::internal()),
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Caller(staff) = Caller::from_request_parts(parts, state).await?;
        if staff.role != Role::Admin {
            return Err(ApiError::forbidden("only admins may do this"));
        }
        Ok(Admin(staff))
    }
}
