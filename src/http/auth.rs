//! Bearer-token authentication as extractors.
//!
//! `Caller` is any active staff member; `Admin` additionally requires the
//! admin role and answers agents 403 `forbidden` (SPEC §4.1).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

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
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        match state.store.authenticate(token).await? {
            Some(staff) => Ok(Caller(staff)),
            None => Err(ApiError::unauthorized()),
        }
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
