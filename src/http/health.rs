//! Liveness, readiness and metrics (SPEC §4.1 `/readyz`).
//!
//! `/readyz` is about this instance being able to serve: the database
//! answers and is migrated. A channel that is down shows `ok: false` in its
//! own check without making the instance unready, so a load balancer keeps
//! webhooks flowing while, say, one mailbox is unreachable.

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let mut checks = Map::new();
    let db = tokio::time::timeout(Duration::from_secs(5), async {
        state.store.ping().await?;
        state.store.is_migrated().await
    })
    .await;
    let db_ok = match db {
        Ok(Ok(true)) => {
            checks.insert(
                "database".into(),
                json!({ "ok": true, "backend": state.store.backend_name() }),
            );
            true
        }
        Ok(Ok(false)) => {
            checks.insert(
                "database".into(),
                json!({ "ok": false, "error": "migrations pending: run `switchboard migrate`" }),
            );
            false
        }
        Ok(Err(e)) => {
            checks.insert(
                "database".into(),
                json!({ "ok": false, "error": e.to_string() }),
            );
            false
        }
        Err(_) => {
            checks.insert(
                "database".into(),
                json!({ "ok": false, "error": "timed out after 5s" }),
            );
            false
        }
    };
    for (name, channel) in state.health.snapshot() {
        checks.insert(name, json!(channel));
    }
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": db_ok, "checks": checks })))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Ok(depth) = state.store.outbox_depth().await {
        state.metrics.outbox_depth(depth);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
