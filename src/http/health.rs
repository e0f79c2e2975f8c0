//! Liveness, readiness and metrics (SPEC §4.1 `/readyz`).
//!
//! `/readyz` is about this instance being able to serve: the database
//! answers and is migrated. A channel that is down shows `ok: false` in its
//! own check without making the instance unready, so a load balancer keeps
//! webhooks flowing while, say, one mailbox is unreachable.
//!
//! None of these take the bearer token (`security(())` overrides the
//! document's default), so probes and Prometheus need no secret. For the
//! same reason `/readyz` shows each check's `ok` and, when failing, a short
//! reason code as `error` — never an error message, which can carry the
//! Account SID, hosts or internal URLs (those go to the log).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// `/healthz`: the process answers.
#[derive(Serialize, ToSchema)]
struct Liveness {
    /// Always `ok`.
    status: &'static str,
}

/// Liveness
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    security(()),
    responses((status = 200, description = "The process is up", body = Liveness))
)]
async fn healthz() -> Json<Liveness> {
    Json(Liveness { status: "ok" })
}

/// `/readyz` (SPEC §4.1).
#[derive(Serialize, ToSchema)]
struct Readiness {
    /// The database is reachable and migrated.
    ready: bool,
    /// `database`, then one per channel (`imap:<name>`, `twilio`, `smtp`):
    /// each `{"ok": bool, "error"?, "last_success"?, …}`.
    checks: BTreeMap<String, Value>,
}

/// Readiness
///
/// 200 when this instance can serve (database reachable and migrated), 503
/// when not. A failing channel shows `ok: false` in its own check without
/// making the instance unready.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    security(()),
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: see `checks.database`", body = Readiness),
    )
)]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let mut checks = BTreeMap::new();
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
                json!({ "ok": false, "error": "migrations_pending" }),
            );
            false
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the database check failed");
            checks.insert(
                "database".into(),
                json!({ "ok": false, "error": "database_unavailable" }),
            );
            false
        }
        Err(_) => {
            tracing::warn!("readiness: the database check timed out after 5s");
            checks.insert(
                "database".into(),
                json!({ "ok": false, "error": "database_timeout" }),
            );
            false
        }
    };
    for (name, channel) in state.health.snapshot() {
        // The SPEC §4.1 shape; `standby` and `next_run` say nothing secret.
        let mut check = json!({
            "ok": channel.ok,
            "error": channel.error,
            "last_success": channel.last_success,
        });
        if let Some(next) = channel.next_run {
            check["next_run"] = json!(next);
        }
        if channel.standby.is_some() {
            check["standby"] = json!("another_instance");
        }
        checks.insert(name, check);
    }
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            ready: db_ok,
            checks,
        }),
    )
}

/// Prometheus metrics
///
/// Ingest counts by channel and rule, rejections by reason, IMAP fetch
/// lag, outbox depth and failures, HTTP latency.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    security(()),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4", body = String))
)]
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
