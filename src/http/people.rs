//! Staff (admin), the caller (`/api/me`), customers and the rejected log.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::{Admin, Caller};
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::domain::{EmailAddress, Role};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/me", get(me))
        .route("/api/staff", get(list_staff).post(create_staff))
        .route("/api/staff/{id}", patch(update_staff))
        .route("/api/staff/{id}/tokens", post(create_token))
        .route("/api/customers/{id}", get(customer))
        .route("/api/customers/{id}/merge", post(merge))
        .route("/api/rejected", get(rejected))
}

/// The caller, with the badges a UI shows: unread notifications and open
/// issues with unread messages.
async fn me(State(state): State<AppState>, Caller(me): Caller) -> ApiResult<Json<Value>> {
    let (notifications, issues) = state.store.badges(me.id).await?;
    let mut v = json!(me);
    v["unread_notifications"] = json!(notifications);
    v["unread_issues"] = json!(issues);
    Ok(Json(v))
}

async fn list_staff(State(state): State<AppState>, Admin(_): Admin) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "staff": state.store.list_staff().await? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStaff {
    email: String,
    name: String,
    #[serde(default)]
    role: Option<String>,
}

fn parse_role(role: &str) -> ApiResult<Role> {
    Role::parse(role)
        .ok_or_else(|| ApiError::unprocessable("invalid_request", "`role` must be admin or agent"))
}

async fn create_staff(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiJson(req): ApiJson<NewStaff>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let email = EmailAddress::parse(&req.email).map_err(|_| {
        ApiError::unprocessable("invalid_request", "`email` is not an email address")
    })?;
    if req.name.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_request",
            "`name` must not be empty",
        ));
    }
    let role = parse_role(req.role.as_deref().unwrap_or("agent"))?;
    let staff = state
        .store
        .create_staff(email.as_str(), &req.name, role)
        .await?;
    let token = state.store.create_token(staff.id).await?;
    tracing::info!(staff_id = staff.id, by = admin.id, role = %role, "staff member created");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "staff": staff, "token": token })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StaffPatch {
    active: Option<bool>,
    role: Option<String>,
    name: Option<String>,
}

async fn update_staff(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<StaffPatch>,
) -> ApiResult<Json<Value>> {
    let role = req.role.as_deref().map(parse_role).transpose()?;
    if let Some(name) = &req.name
        && name.trim().is_empty()
    {
        return Err(ApiError::unprocessable(
            "invalid_request",
            "`name` must not be empty",
        ));
    }
    let staff = state
        .store
        .update_staff(id, req.active, role, req.name.as_deref().map(str::trim))
        .await?;
    tracing::info!(staff_id = id, by = admin.id, "staff member updated");
    Ok(Json(json!(staff)))
}

async fn create_token(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let token = state.store.create_token(id).await?;
    tracing::info!(staff_id = id, by = admin.id, "token created");
    Ok((StatusCode::CREATED, Json(json!({ "token": token }))))
}

async fn customer(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(state.store.customer(id, me.id).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    from: i64,
}

/// Admin: merge another customer into this one (SPEC §3.5).
async fn merge(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<MergeBody>,
) -> ApiResult<Json<Value>> {
    let view = state.store.merge_customers(id, body.from, &admin).await?;
    tracing::info!(
        into = id,
        from = body.from,
        by = admin.id,
        "customers merged"
    );
    Ok(Json(json!(view)))
}

async fn rejected(
    State(state): State<AppState>,
    Admin(_): Admin,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let limit = match q.get("limit") {
        None => 50,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request("invalid_parameter", "`limit` must be 1 to 500")
            })?,
    };
    let before =
        match q.get("before") {
            None => None,
            Some(v) => Some(v.parse::<i64>().map_err(|_| {
                ApiError::bad_request("invalid_parameter", "`before` must be an id")
            })?),
        };
    let rows = state.store.list_rejected(before, limit).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(Json(json!({ "rejected": rows, "next_cursor": next })))
}
