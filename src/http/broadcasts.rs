//! Broadcasts (SPEC §4): one announcement to many customers, each over
//! their own channel, rate-limited, opted-out contacts skipped, progress
//! and per-recipient outcome readable while it runs. Routes are registered
//! with `routes!` from their `#[utoipa::path]`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Admin;
use super::error::{
    AdminErrors, ApiError, ApiJson, ApiPath, ApiResult, AuthErrors, BodyErrors, NotFoundError,
};
use crate::store::{BroadcastView, Staff};

/// Time between two deliveries of one broadcast (Twilio long codes send
/// about one message per second).
pub const SPACING: Duration = Duration::from_millis(1000);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(show))
}

/// `POST /api/broadcasts`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewBroadcast {
    body: String,
    /// The subject of the emails; SMS recipients get `body` alone.
    subject: Option<String>,
    /// A non-empty list of customer ids, or `"all"`.
    #[schema(schema_with = customer_ids_schema)]
    customer_ids: Value,
}

/// `customer_ids`: `[1, 2, …]` or `"all"`. Read as JSON and checked by
/// hand, so its schema is written out.
fn customer_ids_schema() -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(
            ArrayBuilder::new()
                .items(ObjectBuilder::new().schema_type(Type::Integer))
                .min_items(Some(1)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["all"])),
        )
        .into()
}

/// Send one announcement to many customers (admins only)
///
/// Each customer is reached over their own channel, rate-limited;
/// opted-out contacts are skipped. Progress is readable at
/// `GET /api/broadcasts/{id}`.
#[utoipa::path(
    post,
    path = "/api/broadcasts",
    operation_id = "create_broadcast",
    tag = "broadcasts",
    request_body = NewBroadcast,
    responses(
        (status = 202, description = "The broadcast, queued", body = BroadcastView),
        BodyErrors,
        AdminErrors,
        AuthErrors,
    )
)]
async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiJson(req): ApiJson<NewBroadcast>,
) -> ApiResult<(StatusCode, Json<BroadcastView>)> {
    let customers: Option<Vec<i64>> = match &req.customer_ids {
        Value::String(s) if s == "all" => None,
        Value::Array(a) => Some(
            a.iter()
                .map(|v| v.as_i64())
                .collect::<Option<Vec<i64>>>()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    ApiError::unprocessable(
                        "invalid_request",
                        "`customer_ids` must be a non-empty list of ids or \"all\"",
                    )
                })?,
        ),
        _ => {
            return Err(ApiError::unprocessable(
                "invalid_request",
                "`customer_ids` must be a list of ids or \"all\"",
            ));
        }
    };
    let view = send(
        &state,
        &admin,
        &req.body,
        req.subject.as_deref(),
        customers.as_deref(),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// Queues a broadcast (`customers` = None: every customer) after the
/// checks every caller passes; shared with the Broadcasts page, so the
/// rules are decided here once.
pub(crate) async fn send(
    state: &AppState,
    admin: &Staff,
    body: &str,
    subject: Option<&str>,
    customers: Option<&[i64]>,
) -> ApiResult<BroadcastView> {
    if body.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_request",
            "`body` must not be empty",
        ));
    }
    if customers.is_some_and(<[i64]>::is_empty) {
        return Err(ApiError::unprocessable(
            "invalid_request",
            "`customer_ids` must be a non-empty list of ids or \"all\"",
        ));
    }
    let subject = subject.map(str::trim).filter(|s| !s.is_empty());
    let view = state
        .store
        .create_broadcast(admin, body, subject, customers, SPACING)
        .await?;
    state.outbox_wake.notify_one();
    tracing::info!(
        broadcast_id = view.id,
        by = admin.id,
        total = view.total,
        "broadcast queued"
    );
    Ok(view)
}

/// A broadcast's progress and per-recipient outcome (admins only)
#[utoipa::path(
    get,
    path = "/api/broadcasts/{id}",
    operation_id = "show_broadcast",
    tag = "broadcasts",
    params(("id" = i64, Path, description = "Broadcast id")),
    responses(
        (status = 200, description = "The broadcast", body = BroadcastView),
        AdminErrors,
        NotFoundError,
        AuthErrors,
    )
)]
async fn show(
    State(state): State<AppState>,
    Admin(_): Admin,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<BroadcastView>> {
    Ok(Json(state.store.broadcast(id).await?))
}
