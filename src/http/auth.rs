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

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(header) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return from_session(parts, state).await;
        };
        // The scheme is case-insensitive (RFC 9110 §11.1).
        let token = header
            .trim_start()
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
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
