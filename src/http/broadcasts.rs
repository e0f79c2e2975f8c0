//! Broadcasts (SPEC §4): one announcement to many customers, each over
//! their own channel, rate-limited, opted-out contacts skipped, progress
//! and per-recipient outcome readable while it runs.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, ApiJson, ApiPath, ApiResult};

/// Time between two deliveries of one broadcast (Twilio long codes send
/// about one message per second).
pub const SPACING: Duration = Duration::from_millis(1000);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/broadcasts", post(create))
        .route("/api/broadcasts/{id}", get(show))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBroadcast {
    body: String,
    subject: Option<String>,
    customer_ids: Value,
}

async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiJson(req): ApiJson<NewBroadcast>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if req.body.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_request",
            "`body` must not be empty",
        ));
    }
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
    let view = state
        .store
        .create_broadcast(
            &admin,
            &req.body,
            req.subject.as_deref(),
            customers.as_deref(),
            SPACING,
        )
        .await?;
    state.outbox_wake.notify_one();
    tracing::info!(
        broadcast_id = view.id,
        by = admin.id,
        total = view.total,
        "broadcast queued"
    );
    Ok((StatusCode::ACCEPTED, Json(json!(view))))
}

async fn show(
    State(state): State<AppState>,
    Admin(_): Admin,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(state.store.broadcast(id).await?)))
}
