//! Twilio webhooks: inbound SMS and delivery status callbacks (SPEC §3.2).
//!
//! The order matters and is deliberate: size limit, signature, account,
//! parameters, then one durable transaction, and only then `200`. A
//! rejected request is counted and kept in the rejected log (never its
//! body) so that a wrong `public_url` behind a proxy shows up at once in
//! `/metrics` and `/api/rejected` instead of silently losing messages, the
//! trap Chatwoot fell into. If the database fails we answer 500 and Twilio
//! retries; dedupe on `MessageSid` makes the retry harmless.
//!
//! Twilio signs these instead of sending the bearer token, so their
//! `#[utoipa::path]` clears the document's default security.
//!
//! Two refinements of "500 and Twilio retries" (issue 11):
//! * NUL characters are dropped from every parameter after the signature
//!   check (Twilio signed them as sent; PostgreSQL cannot store them).
//! * A message the database refuses *as data* (`StoreError::is_poison`:
//!   it would fail the same way on every retry) is a poison message. It is
//!   written to the rejected log, reason `unstorable`, with its sid, sender
//!   and body, and only when that write has committed is Twilio answered
//!   200. The text is then durably kept where an admin looks for what did
//!   not make it in (`/api/rejected`), which is what the 200 promises;
//!   answering 500 instead would loop until Twilio gives up and lose it.
//!   If the rejected log cannot be written either, the answer stays 500.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa::IntoResponses;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::channels::sms::twilio::{self, EMPTY_TWIML, InboundSms, StatusCallback};
use crate::domain::{Channel, Contact, DeliveryStatus, Phone};
use crate::store::{Inbound, IngestOptions, IngestOutcome};
use crate::web::session::ClientAddr;

/// SPEC §3.2: a webhook body over 64 KiB is refused with 413.
pub const WEBHOOK_BODY_LIMIT: usize = 64 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sms))
        .routes(routes!(status))
        .layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT))
}

/// What Twilio can be answered besides the empty TwiML.
#[derive(IntoResponses)]
pub enum WebhookErrors {
    /// `missing_parameter` or `invalid_parameter`.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// `forbidden`: the signature or the account did not verify (kept in
    /// the rejected log).
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// `not_found`: the SMS channel is off.
    #[response(status = 404)]
    ChannelOff(ErrorBody),
    /// `payload_too_large`: over 64 KiB.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// `internal_error`: not stored; Twilio retries.
    #[response(status = 500)]
    Internal(ErrorBody),
}

fn twiml() -> Response {
    ([(header::CONTENT_TYPE, "text/xml")], EMPTY_TWIML).into_response()
}

/// Checks the signature and account; on failure records the rejection and
/// returns the response to send.
async fn verify(
    state: &AppState,
    client: Option<&str>,
    uri: &Uri,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<(), Response> {
    // The client holds the live credentials (a reload may have rotated
    // them); the configuration is the start-up copy.
    let (account_sid, token) = match &state.twilio {
        Some(client) => client.credentials(),
        None => (
            state.config.twilio.account_sid.clone(),
            state
                .config
                .twilio
                .auth_token
                .as_ref()
                .map(|t| t.expose().to_string())
                .unwrap_or_default(),
        ),
    };
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or(uri.path());
    let url = format!(
        "{}{}",
        state.config.server.public_url.trim_end_matches('/'),
        path
    );
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok());
    let reason = match signature {
        None => Some("missing_signature"),
        Some(sig) if !twilio::verify_signature(&token, &url, params, sig) => Some("bad_signature"),
        Some(_) => {
            let account = params
                .iter()
                .find(|(k, _)| k == "AccountSid")
                .map(|(_, v)| v.as_str());
            (account != Some(account_sid.as_str())).then_some("wrong_account")
        }
    };
    let Some(reason) = reason else { return Ok(()) };
    // Unsigned, so only a bounded prefix of it reaches the log.
    let sid = params
        .iter()
        .find(|(k, _)| k == "MessageSid")
        .map(|(_, v)| v.clone());
    let logged_sid = crate::domain::text::capped(sid.as_deref().unwrap_or(""), 64).0;
    tracing::warn!(
        path = uri.path(),
        reason,
        expected_url = %crate::domain::text::capped(&url, 256).0,
        message_sid = %logged_sid,
        "rejected Twilio webhook; if every request fails, check server.public_url"
    );
    state.metrics.rejected("webhook", reason);
    let detail = json!({ "path": uri.path(), "expected_url": url, "message_sid": sid });
    if let Err(e) = state
        .store
        .record_rejected_from("webhook", reason, client, &detail)
        .await
    {
        tracing::error!(error = %e, "could not record a rejected webhook");
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "webhook signature or account did not verify",
    )
    .into_response())
}

/// Twilio inbound SMS webhook
///
/// Verified by `X-Twilio-Signature` against `server.public_url`, then
/// stored in one transaction before the 200.
#[utoipa::path(
    post,
    path = "/webhooks/twilio/sms",
    tag = "webhooks",
    security(()),
    params(("X-Twilio-Signature" = String, Header, description = "Twilio's HMAC-SHA1 of the URL and parameters")),
    request_body(content_type = "application/x-www-form-urlencoded", description = "Twilio's parameters (`MessageSid`, `AccountSid`, `From`, `Body`, `NumMedia`, …)"),
    responses(
        (status = 200, description = "Stored (or a duplicate): empty TwiML", content_type = "text/xml", body = String),
        WebhookErrors,
    )
)]
async fn sms(
    State(state): State<AppState>,
    uri: Uri,
    client: ClientAddr,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    if !state.config.twilio.enabled {
        return ApiError::not_found("SMS channel").into_response();
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            let err = ApiError::from(e);
            if err.status == StatusCode::PAYLOAD_TOO_LARGE {
                // Only the path and the declared size: nothing of the body.
                state.metrics.rejected("webhook", "too_large");
                let declared = headers
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                let detail = json!({ "path": uri.path(), "content_length": declared });
                if let Err(e) = state
                    .store
                    .record_rejected_from("webhook", "too_large", client.0.as_deref(), &detail)
                    .await
                {
                    tracing::error!(error = %e, "could not record a rejected webhook");
                }
            }
            return err.into_response();
        }
    };
    let params = twilio::parse_form(&body);
    if let Err(resp) = verify(&state, client.0.as_deref(), &uri, &headers, &params).await {
        return resp;
    }
    let params = without_nul(params);
    let inbound = match InboundSms::from_params(&params) {
        Ok(m) => m,
        Err(e) => {
            state.metrics.rejected("webhook", "missing_parameter");
            if let Err(db) = state
                .store
                .record_rejected(
                    "webhook",
                    "missing_parameter",
                    &json!({ "path": uri.path(), "error": e.to_string() }),
                )
                .await
            {
                tracing::error!(error = %db, "could not record a rejected webhook");
            }
            return ApiError::bad_request("missing_parameter", e.to_string()).into_response();
        }
    };
    let region = state.config.threading.default_region.as_ref();
    let Some(phone) = Phone::parse_lenient(&inbound.from, region) else {
        // Signed by Twilio, so the sender is real but not a phone number we
        // can reply to or thread by (`sip:…`, a short code in another
        // form): refused, and kept in the rejected log so staff can see it.
        state.metrics.rejected("webhook", "invalid_sender");
        tracing::warn!(message_sid = %inbound.message_sid, "inbound SMS from a sender that is not a phone number");
        let detail = json!({
            "path": uri.path(),
            "message_sid": inbound.message_sid,
            "from": inbound.from,
            "body": inbound.body,
        });
        if let Err(e) = state
            .store
            .record_rejected("webhook", "invalid_sender", &detail)
            .await
        {
            tracing::error!(error = %e, "could not record a rejected webhook");
        }
        return ApiError::bad_request("invalid_parameter", "`From` is not a phone number")
            .into_response();
    };
    let msg = Inbound {
        channel: Channel::Sms,
        external_id: inbound.message_sid.clone(),
        sender: Contact::Phone(phone),
        sender_name: None,
        subject: None,
        body: inbound.body.clone(),
        html: None,
        raw: None,
        references: Vec::new(),
        is_automated: false,
        received_at: crate::store::now(),
        media: inbound
            .media
            .iter()
            .map(|m| (m.url.clone(), m.content_type.clone()))
            .collect(),
        mailbox: None,
        references_header: None,
        referenced_issue: None,
        is_bounce: false,
        attachments: Vec::new(),
    };
    let opts = IngestOptions::from_config(&state.config);
    match state.store.ingest(&msg, &opts).await {
        Ok(outcome) => {
            state.health.success("twilio");
            match &outcome {
                IngestOutcome::Stored {
                    message_id,
                    issue_id,
                    rule,
                    ..
                } => {
                    state.metrics.ingested("sms", rule.as_str());
                    tracing::info!(message_sid = %inbound.message_sid, issue_id, message_id, rule = rule.as_str(), "sms ingested");
                }
                IngestOutcome::Duplicate { issue_id, .. } => {
                    state.metrics.ingested("sms", "duplicate");
                    tracing::info!(message_sid = %inbound.message_sid, issue_id, "duplicate sms acknowledged");
                }
                _ => {}
            }
            if !inbound.media.is_empty() {
                state.outbox_wake.notify_one();
            }
            twiml()
        }
        Err(e) if e.is_poison() => poison(&state, &uri, &inbound, &e).await,
        Err(e) => {
            tracing::error!(message_sid = %inbound.message_sid, error = %e, "could not store an inbound sms; Twilio will retry");
            ApiError::internal().into_response()
        }
    }
}

/// Every parameter without NUL characters (see the module comment).
fn without_nul(params: Vec<(String, String)>) -> Vec<(String, String)> {
    use crate::domain::text::strip_nul;
    params
        .into_iter()
        .map(|(k, v)| (strip_nul(k), strip_nul(v)))
        .collect()
}

/// A signed message the database refuses as data: kept in the rejected
/// log and acknowledged, or 500 if even that cannot be written.
async fn poison(
    state: &AppState,
    uri: &Uri,
    inbound: &InboundSms,
    error: &crate::store::StoreError,
) -> Response {
    let code = error.db_code().unwrap_or_default();
    state.metrics.rejected("webhook", "unstorable");
    let detail = json!({
        "path": uri.path(),
        "message_sid": inbound.message_sid,
        "from": inbound.from,
        "body": inbound.body,
        "error": format!("the database refused the message (code {code})"),
    });
    match state
        .store
        .record_rejected("webhook", "unstorable", &detail)
        .await
    {
        Ok(id) => {
            tracing::error!(message_sid = %inbound.message_sid, rejected_id = id, db_code = %code, error = %error,
                "an inbound sms cannot be stored; kept in the rejected log and acknowledged");
            twiml()
        }
        Err(e) => {
            tracing::error!(message_sid = %inbound.message_sid, error = %error, record_error = %e,
                "an inbound sms cannot be stored nor recorded as rejected; Twilio will retry");
            ApiError::internal().into_response()
        }
    }
}

/// Twilio delivery status callback
///
/// Moves a reply's `delivery.status` forward (never back).
#[utoipa::path(
    post,
    path = "/webhooks/twilio/status",
    tag = "webhooks",
    security(()),
    params(("X-Twilio-Signature" = String, Header, description = "Twilio's HMAC-SHA1 of the URL and parameters")),
    request_body(content_type = "application/x-www-form-urlencoded", description = "Twilio's parameters (`MessageSid`, `MessageStatus`, `ErrorCode`, …)"),
    responses(
        (status = 200, description = "Recorded (or ignored): empty TwiML", content_type = "text/xml", body = String),
        WebhookErrors,
    )
)]
async fn status(
    State(state): State<AppState>,
    uri: Uri,
    client: ClientAddr,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    if !state.config.twilio.enabled {
        return ApiError::not_found("SMS channel").into_response();
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let params = twilio::parse_form(&body);
    if let Err(resp) = verify(&state, client.0.as_deref(), &uri, &headers, &params).await {
        return resp;
    }
    let params = without_nul(params);
    let cb = match StatusCallback::from_params(&params) {
        Ok(cb) => cb,
        Err(e) => return ApiError::bad_request("missing_parameter", e.to_string()).into_response(),
    };
    let Some(status) = twilio::map_status(&cb.status).and_then(DeliveryStatus::parse) else {
        tracing::debug!(message_sid = %cb.message_sid, status = %cb.status, "ignoring unknown delivery status");
        return twiml();
    };
    let error = match (&cb.error_code, status) {
        (Some(code), _) => Some((code.clone(), twilio::error_text(code).to_string())),
        (None, DeliveryStatus::Failed) => Some((
            "unknown".to_string(),
            "the provider reported a failure without a code".to_string(),
        )),
        _ => None,
    };
    let error_ref = error.as_ref().map(|(c, m)| (c.as_str(), m.as_str()));
    match state
        .store
        .delivery_report(Channel::Sms, &cb.message_sid, status, error_ref)
        .await
    {
        Ok(found) => {
            if !found {
                tracing::debug!(message_sid = %cb.message_sid, "status callback for an unknown message");
            }
            twiml()
        }
        Err(e) => {
            tracing::error!(message_sid = %cb.message_sid, error = %e, "could not store a delivery status");
            ApiError::internal().into_response()
        }
    }
}
