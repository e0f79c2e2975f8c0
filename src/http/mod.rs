//! The HTTP surface: admin API, Twilio webhooks, health and metrics.
//!
//! One module per resource, each exposing `router()` (realworld-axum-sqlx),
//! merged here under one shared `AppState`. Handlers translate requests to
//! store calls and nothing more: rules live in `domain/`, persistence in
//! `store/`.
//!
//! The routers are utoipa-axum `OpenApiRouter`s: each route is registered
//! from its handler's `#[utoipa::path]`, so `api()` yields the axum routes
//! and the OpenAPI document together, and `/api/openapi.json` serves what
//! `router()` serves (see `openapi`).

pub mod auth;
pub mod broadcasts;
pub mod error;
pub mod files;
pub mod health;
pub mod issues;
pub mod notifications;
pub mod openapi;
pub mod people;
pub mod webhooks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use tokio::sync::Notify;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::channels::sms::twilio::TwilioClient;
use crate::config::Config;
use crate::store::Store;

/// Largest JSON body the admin API accepts.
const API_BODY_LIMIT: usize = 1024 * 1024;

/// Everything a handler may need. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    /// `None` while the SMS channel is off.
    pub twilio: Option<TwilioClient>,
    /// Pokes the outbox worker when a reply is queued.
    pub outbox_wake: Arc<Notify>,
    pub metrics: crate::metrics::Metrics,
    /// Channel states shown by `/readyz`.
    pub health: crate::channels::health::ChannelHealth,
    pub started: Instant,
    /// Live events for `GET /api/stream`.
    pub hub: crate::notify::stream::Hub,
    /// Attachment rules and files.
    pub attachments: crate::attachments::Attachments,
    /// Cancelled at shutdown; long-lived responses (SSE) end on it.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// Every route with its documentation, and the layers that belong to
/// groups of routes (the admin API's body limit; the webhooks carry their
/// own). `router()` serves it; `openapi::document()` describes it.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(issues::router())
        .merge(people::router())
        .merge(notifications::router())
        .merge(files::router())
        .merge(openapi::router())
        .merge(broadcasts::router())
        .layer(DefaultBodyLimit::max(API_BODY_LIMIT))
        .merge(webhooks::router())
        .merge(health::router())
}

/// The whole router.
pub fn router(state: AppState) -> Router {
    let (routes, _doc) = api().split_for_parts();
    routes
        .merge(crate::web::router())
        .merge(files::media_router())
        // After every route is registered: it applies to those before it.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(request_spans())
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(middleware::from_fn(head_limits))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .with_state(state)
}

/// One span per request, so every log line a handler writes carries the
/// request's id (`x-request-id`: the caller's, or a new UUID, echoed in the
/// response), its method and its route template; the answer's status and
/// latency are recorded on the span and logged at debug level. The route
/// is the template (`/issues/{id}`), never the path: paths can hold
/// secrets (`/welcome/<code>`, `/media/<token>`).
type SpanFn = fn(&Request) -> tracing::Span;
type ResponseFn = fn(&Response, Duration, &tracing::Span);

fn request_spans() -> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, SpanFn, (), ResponseFn> {
    fn span(req: &Request) -> tracing::Span {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str())
            .unwrap_or("unmatched");
        let id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(|v| crate::domain::text::capped(v, 64).0)
            .unwrap_or_default();
        tracing::info_span!(
            "request",
            request_id = %id,
            method = %crate::metrics::method_label(req.method()),
            route,
            status = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        )
    }
    fn done(resp: &Response, latency: Duration, span: &tracing::Span) {
        span.record("status", resp.status().as_u16());
        span.record("latency_ms", latency.as_secs_f64() * 1000.0);
        tracing::debug!(parent: span, "answered");
    }
    TraceLayer::new_for_http()
        .make_span_with(span as SpanFn)
        .on_request(())
        .on_response(done as ResponseFn)
}

async fn not_found() -> error::ApiError {
    error::ApiError::not_found("route")
}

/// A route that exists, asked with a method it lacks: axum's own answer has
/// an empty body, and every error here is JSON. axum still adds `Allow`.
async fn method_not_allowed() -> error::ApiError {
    error::ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not support that method",
    )
}

/// Longest request target (path and query) answered normally.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most request header bytes (names and values) answered normally.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most request headers answered normally.
pub const MAX_HEADERS: usize = 100;

/// 414 and 431 as JSON errors, like every other error. hyper refuses a
/// request head past its own hard limits (a 64 KiB target, ~400 KiB of
/// head, `serve`'s header count) with a bare status line before any of
/// this runs; these limits are well below those, so every oversized
/// request a client can plausibly send gets the JSON answer.
async fn head_limits(req: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().len())
        .unwrap_or(0);
    if target > MAX_URI_BYTES {
        return error::ApiError::new(
            axum::http::StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request target is longer than {MAX_URI_BYTES} bytes"),
        )
        .into_response();
    }
    let headers = req.headers();
    let bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return error::ApiError::new(
            axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("the request headers exceed {MAX_HEADERS} fields or {MAX_HEADER_BYTES} bytes"),
        )
        .into_response();
    }
    next.run(req).await
}

/// Records request latency by route and status for `/metrics`, closes
/// the connection after a 413, and marks responses `nosniff` and
/// `no-store` unless they set their own. The labels are the matched route template
/// (`unmatched` for the fallback) and the method mapped to a standard verb
/// or `other`: never text a caller chose.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().clone();
    let mut resp = next.run(req).await;
    // A body refused for its size was not read to its end, so the server
    // cannot reuse the connection; say so, or a client may send its next
    // request on a connection that is being closed.
    if resp.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        resp.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    // API answers are private and typed: never cached, never sniffed. A
    // response that chose its own (the pages, the hashed assets) keeps it.
    let h = resp.headers_mut();
    h.entry(axum::http::header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(axum::http::HeaderValue::from_static("nosniff"));
    h.entry(axum::http::header::CACHE_CONTROL)
        .or_insert(axum::http::HeaderValue::from_static("no-store"));
    state
        .metrics
        .http_request(&method, &route, resp.status().as_u16(), start.elapsed());
    resp
}
