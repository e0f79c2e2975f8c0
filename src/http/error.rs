//! One error type for the whole API, rendered as SPEC §4's
//! `{"error": {"code", "message"}}`.
//!
//! Every rejection axum's own extractors can produce (bad JSON, a path id
//! that is not a number, a body over the limit) is converted here too, so
//! no client ever sees a plain-text error from the framework.
//!
//! The bottom of the file describes the same body and the common error
//! responses for the OpenAPI document; handlers name the groups that apply
//! to them in `#[utoipa::path(responses(...))]`.

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa::{IntoResponses, ToSchema};

use crate::domain::RefusalKind;
use crate::store::StoreError;

/// An API error: status, stable code, human message.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra fields merged into the error object (e.g. `issue_id`).
    pub extra: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: None,
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; see the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let (Some(serde_json::Value::Object(extra)), Some(obj)) =
            (self.extra, error.as_object_mut())
        {
            obj.extend(extra);
        }
        let mut resp = (self.status, Json(json!({ "error": error }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// The status of each kind of refusal, for the API and the web page: the
/// one place a rule's answer becomes HTTP.
pub fn refusal_status(kind: RefusalKind) -> StatusCode {
    match kind {
        RefusalKind::Conflict => StatusCode::CONFLICT,
        RefusalKind::Forbidden => StatusCode::FORBIDDEN,
        RefusalKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Rule(r) => {
                let mut err = ApiError::new(refusal_status(r.kind), r.code, r.message);
                if let Some(id) = r.issue_id {
                    err.extra = Some(json!({ "issue_id": id }));
                }
                err
            }
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::internal()
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => {
                ApiError::unprocessable("invalid_request", e.body_text())
            }
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::bad_request("invalid_json", e.body_text())
            }
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::bad_request("invalid_json", "expected Content-Type: application/json")
            }
            JsonRejection::BytesRejection(b) => ApiError::from(b),
            other => ApiError::bad_request("invalid_json", other.body_text()),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is too large",
            )
        } else {
            ApiError::bad_request("invalid_body", r.body_text())
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        // `/api/issues/abc` names no issue.
        ApiError::new(StatusCode::NOT_FOUND, "not_found", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request("invalid_parameter", r.body_text())
    }
}

/// `Json` whose rejections are API errors.
///
/// Written out rather than derived from `axum::Json` for one case: an empty
/// body. axum calls that a JSON syntax error (400), but nothing malformed
/// was sent; the request simply lacks the fields the route requires, which
/// is the 422 that `{}` gets too. Anything non-empty goes through axum's
/// own content-type check and parser, so malformed JSON stays a 400.
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                let essence = ct.split(';').next().unwrap_or("").trim();
                essence.eq_ignore_ascii_case("application/json")
                    || (essence.len() > "application/+json".len()
                        && essence[..12].eq_ignore_ascii_case("application/")
                        && essence[essence.len() - 5..].eq_ignore_ascii_case("+json"))
            })
            .unwrap_or(false);
        let bytes = axum::body::Bytes::from_request(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::unprocessable(
                "invalid_request",
                "the request body is empty; expected a JSON object",
            ));
        }
        if !is_json {
            return Err(ApiError::bad_request(
                "invalid_json",
                "expected Content-Type: application/json",
            ));
        }
        // A NUL can only arrive escaped (`\u0000`; a raw one is a syntax
        // error). PostgreSQL cannot store it, so it is dropped from every
        // string before the handler sees the body. Bodies without one take
        // the direct path and keep axum's error messages.
        if !bytes.windows(6).any(|w| w == b"\\u0000") {
            let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
            return Ok(ApiJson(value));
        }
        let axum::Json(mut value) = axum::Json::<serde_json::Value>::from_bytes(&bytes)?;
        strip_nul_in(&mut value);
        serde_json::from_value(value)
            .map(ApiJson)
            .map_err(|e| ApiError::unprocessable("invalid_request", e.to_string()))
    }
}

/// Drops NUL characters from every string (and key) of `value`.
fn strip_nul_in(value: &mut serde_json::Value) {
    use crate::domain::text::strip_nul;
    match value {
        serde_json::Value::String(s) => *s = strip_nul(std::mem::take(s)),
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nul_in),
        serde_json::Value::Object(map) => {
            let entries = std::mem::take(map);
            for (k, mut v) in entries {
                strip_nul_in(&mut v);
                map.insert(strip_nul(k), v);
            }
        }
        _ => {}
    }
}

/// `Path` whose rejections are API errors.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `Query` whose rejections are API errors, and whose values carry no NUL
/// (`%00` is dropped before decoding: PostgreSQL cannot compare text with
/// a NUL in it, and `q=%00` used to be a 500).
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        // After percent-decoding, only `%00` yields a NUL (a raw one is not
        // a valid URI), and no other escape contains that text.
        let query = if query.contains("%00") {
            std::borrow::Cow::Owned(query.replace("%00", ""))
        } else {
            std::borrow::Cow::Borrowed(query)
        };
        serde_urlencoded::from_str(&query)
            .map(ApiQuery)
            .map_err(|e| {
                ApiError::bad_request(
                    "invalid_parameter",
                    format!("Failed to deserialize query string: {e}"),
                )
            })
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

// What `ApiError::into_response` writes, described for the document under
// the name `Error`. `into_response` builds it with `json!` because `extra`
// merges arbitrary fields into the object; `issue_id` is the only one today.

/// Every error response (SPEC §4).
#[derive(ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    #[schema(inline)]
    pub error: ErrorDetail,
}

/// A stable code and a human message.
#[derive(ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `not_found`, `forbidden`, `invalid_request`.
    pub code: String,
    pub message: String,
    /// Only with 409 `customer_has_open_issue`: the customer's open issue.
    pub issue_id: Option<i64>,
}

/// What every route behind the bearer token can answer.
#[derive(IntoResponses)]
pub enum AuthErrors {
    /// `unauthorized`: no bearer token, an unknown one, or a deactivated
    /// staff member (with `WWW-Authenticate: Bearer`).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// `internal_error`: see the server log.
    #[response(status = 500)]
    Internal(ErrorBody),
}

/// Admin-only routes (SPEC §4.1).
#[derive(IntoResponses)]
pub enum AdminErrors {
    /// `forbidden`: the caller is an agent; only admins may do this.
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

/// Actions that a rule may refuse to this caller.
#[derive(IntoResponses)]
pub enum RuleErrors {
    /// `forbidden` or `not_assignee`: the caller may not do this here.
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

/// Routes that name a resource by id.
#[derive(IntoResponses)]
pub enum NotFoundError {
    /// `not_found`: no such resource (or an id that is not a number).
    #[response(status = 404)]
    NotFound(ErrorBody),
}

/// Routes whose request is refused by the state it finds.
#[derive(IntoResponses)]
pub enum ConflictError {
    /// A state conflict, e.g. `already_assigned`, `issue_closed`,
    /// `not_closed`, `already_merged`, `customer_has_open_issue` (with
    /// `issue_id`).
    #[response(status = 409)]
    Conflict(ErrorBody),
}

/// Routes that take a JSON body.
#[derive(IntoResponses)]
pub enum BodyErrors {
    /// `invalid_json`: malformed JSON or not `Content-Type: application/json`.
    #[response(status = 400)]
    InvalidJson(ErrorBody),
    /// `payload_too_large`: the body is over the limit.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// `invalid_request` (missing or wrong fields) or a more specific code
    /// such as `body_too_long` or `channel_unavailable`.
    #[response(status = 422)]
    Invalid(ErrorBody),
}

/// Routes with query parameters.
#[derive(IntoResponses)]
pub enum QueryErrors {
    /// `invalid_parameter`: a query parameter out of range or malformed.
    #[response(status = 400)]
    InvalidParameter(ErrorBody),
}
