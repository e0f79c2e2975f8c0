//! Staff (admin), the caller (`/api/me`), customers and the rejected log.
//!
//! Routes are registered with `routes!` from their `#[utoipa::path]`, so
//! what is served and what `/api/openapi.json` documents cannot drift.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::{Admin, Caller};
use super::error::{
    AdminErrors, ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, AuthErrors, BodyErrors,
    ConflictError, NotFoundError, QueryErrors,
};
use crate::domain::{EmailAddress, Role};
use crate::store::{CustomerView, Rejected, Staff};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(list_staff, create_staff))
        .routes(routes!(update_staff))
        .routes(routes!(create_token))
        .routes(routes!(customer))
        .routes(routes!(merge))
        .routes(routes!(rejected))
}

/// `GET /api/me`: the staff member and their badges.
#[derive(Serialize, ToSchema)]
struct Me {
    #[serde(flatten)]
    staff: Staff,
    unread_notifications: i64,
    /// Open issues with messages the caller has not read.
    unread_issues: i64,
}

/// The caller
///
/// With the badges a UI shows: unread notifications and open issues with
/// unread messages.
#[utoipa::path(
    get,
    path = "/api/me",
    tag = "people",
    responses((status = 200, description = "The caller", body = Me), AuthErrors)
)]
async fn me(State(state): State<AppState>, Caller(me): Caller) -> ApiResult<Json<Me>> {
    let (notifications, issues) = state.store.badges(me.id).await?;
    Ok(Json(Me {
        staff: me,
        unread_notifications: notifications,
        unread_issues: issues,
    }))
}

/// `GET /api/staff`.
#[derive(Serialize, ToSchema)]
struct StaffList {
    staff: Vec<Staff>,
}

/// List staff (admins only)
#[utoipa::path(
    get,
    path = "/api/staff",
    tag = "people",
    responses(
        (status = 200, description = "Every staff member", body = StaffList),
        AdminErrors,
        AuthErrors,
    )
)]
async fn list_staff(State(state): State<AppState>, Admin(_): Admin) -> ApiResult<Json<StaffList>> {
    Ok(Json(StaffList {
        staff: state.store.list_staff().await?,
    }))
}

/// `POST /api/staff`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewStaff {
    email: String,
    name: String,
    /// `admin` or `agent` (the default).
    #[serde(default)]
    role: Option<String>,
}

/// A new staff member and their first token, shown this once.
#[derive(Serialize, ToSchema)]
struct StaffCreated {
    staff: Staff,
    token: String,
}

/// A new API token, shown this once.
#[derive(Serialize, ToSchema)]
struct Token {
    token: String,
}

/// `admin` or `agent`; shared with the Staff page.
pub(crate) fn parse_role(role: &str) -> ApiResult<Role> {
    Role::parse(role)
        .ok_or_else(|| ApiError::unprocessable("invalid_request", "`role` must be admin or agent"))
}

/// The checks a new staff member passes, here and on the Staff page:
/// a real email address, a non-empty name, a known role (default agent).
pub(crate) fn check_new_staff(
    email: &str,
    name: &str,
    role: Option<&str>,
) -> ApiResult<(EmailAddress, Role)> {
    let email = EmailAddress::parse(email).map_err(|_| {
        ApiError::unprocessable("invalid_request", "`email` is not an email address")
    })?;
    if name.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_request",
            "`name` must not be empty",
        ));
    }
    let role = parse_role(role.unwrap_or("agent"))?;
    Ok((email, role))
}

/// Add a staff member (admins only)
///
/// Answers the staff member and a token, returned this once.
#[utoipa::path(
    post,
    path = "/api/staff",
    tag = "people",
    request_body = NewStaff,
    responses(
        (status = 201, description = "The staff member and their token", body = StaffCreated),
        BodyErrors,
        AdminErrors,
        ConflictError,
        AuthErrors,
    )
)]
async fn create_staff(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiJson(req): ApiJson<NewStaff>,
) -> ApiResult<(StatusCode, Json<StaffCreated>)> {
    let (email, role) = check_new_staff(&req.email, &req.name, req.role.as_deref())?;
    let staff = state
        .store
        .create_staff(email.as_str(), &req.name, role)
        .await?;
    let token = state.store.create_token(staff.id).await?;
    tracing::info!(staff_id = staff.id, by = admin.id, role = %role, "staff member created");
    Ok((StatusCode::CREATED, Json(StaffCreated { staff, token })))
}

/// `PATCH /api/staff/{id}`: any of the fields.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StaffPatch {
    active: Option<bool>,
    /// `admin` or `agent`.
    role: Option<String>,
    name: Option<String>,
}

/// Change a staff member (admins only)
#[utoipa::path(
    patch,
    path = "/api/staff/{id}",
    tag = "people",
    params(("id" = i64, Path, description = "Staff id")),
    request_body = StaffPatch,
    responses(
        (status = 200, description = "The staff member", body = Staff),
        BodyErrors,
        AdminErrors,
        NotFoundError,
        AuthErrors,
    )
)]
async fn update_staff(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<StaffPatch>,
) -> ApiResult<Json<Staff>> {
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
    Ok(Json(staff))
}

/// New API token for a staff member (admins only)
///
/// The token is returned this once.
#[utoipa::path(
    post,
    path = "/api/staff/{id}/tokens",
    tag = "people",
    params(("id" = i64, Path, description = "Staff id")),
    responses(
        (status = 201, description = "The token", body = Token),
        AdminErrors,
        NotFoundError,
        AuthErrors,
    )
)]
async fn create_token(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<(StatusCode, Json<Token>)> {
    let token = state.store.create_token(id).await?;
    tracing::info!(staff_id = id, by = admin.id, "token created");
    Ok((StatusCode::CREATED, Json(Token { token })))
}

/// View Customer: contacts and issues
#[utoipa::path(
    get,
    path = "/api/customers/{id}",
    tag = "people",
    params(("id" = i64, Path, description = "Customer id (a merged-away id resolves to the survivor)")),
    responses(
        (status = 200, description = "The customer", body = CustomerView),
        NotFoundError,
        AuthErrors,
    )
)]
async fn customer(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<CustomerView>> {
    Ok(Json(state.store.customer(id, me.id).await?))
}

/// `POST /api/customers/{id}/merge`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Merge)]
struct MergeBody {
    /// The customer merged into this one.
    from: i64,
}

/// Merge another customer into this one (admins only)
///
/// SPEC §3.5: `from`'s contacts and issues move to this customer.
#[utoipa::path(
    post,
    path = "/api/customers/{id}/merge",
    tag = "people",
    params(("id" = i64, Path, description = "The customer that remains")),
    request_body = MergeBody,
    responses(
        (status = 200, description = "The merged customer", body = CustomerView),
        BodyErrors,
        AdminErrors,
        NotFoundError,
        ConflictError,
        AuthErrors,
    )
)]
async fn merge(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<MergeBody>,
) -> ApiResult<Json<CustomerView>> {
    let view = state.store.merge_customers(id, body.from, &admin).await?;
    tracing::info!(
        into = id,
        from = body.from,
        by = admin.id,
        "customers merged"
    );
    Ok(Json(view))
}

/// `GET /api/rejected`: one page of the log, newest first.
#[derive(Serialize, ToSchema)]
struct RejectedPage {
    rejected: Vec<Rejected>,
    /// Pass back as `before` for the next page; null on the last page.
    next_cursor: Option<i64>,
}

/// The query of `GET /api/rejected`, read as text and checked by the
/// handler.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RejectedQuery {
    /// Page size (default 50)
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// `next_cursor` of the previous page
    #[param(value_type = Option<i64>)]
    before: Option<String>,
}

/// The rejected-inbound log (admins only)
///
/// Mail that could not be ingested and webhooks that failed verification,
/// with reasons.
#[utoipa::path(
    get,
    path = "/api/rejected",
    tag = "people",
    params(RejectedQuery),
    responses(
        (status = 200, description = "A page of the log", body = RejectedPage),
        QueryErrors,
        AdminErrors,
        AuthErrors,
    )
)]
async fn rejected(
    State(state): State<AppState>,
    Admin(_): Admin,
    ApiQuery(q): ApiQuery<RejectedQuery>,
) -> ApiResult<Json<RejectedPage>> {
    let limit = match q.limit.as_deref() {
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
        match q.before.as_deref() {
            None => None,
            Some(v) => Some(v.parse::<i64>().map_err(|_| {
                ApiError::bad_request("invalid_parameter", "`before` must be an id")
            })?),
        };
    let rows = state.store.list_rejected(before, limit).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(Json(RejectedPage {
        rejected: rows,
        next_cursor: next,
    }))
}
