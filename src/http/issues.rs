//! The Issue Tracker: list, detail, timeline, the state machine actions,
//! replies, comments, read markers and staff-initiated issues.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::domain::{Channel, Contact, IssueStatus};
use crate::store::{AssigneeFilter, IssueAction, IssueFilter, NewIssue, StatusFilter};

/// Twilio refuses bodies over 1,600 characters.
const SMS_MAX_CHARS: usize = 1600;
/// Largest reply or comment we accept.
const BODY_MAX_CHARS: usize = 100_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/issues", get(list).post(create))
        .route("/api/issues/{id}", get(detail))
        .route("/api/issues/{id}/messages", get(messages))
        .route("/api/issues/{id}/take", post(take))
        .route("/api/issues/{id}/assign", post(assign))
        .route("/api/issues/{id}/unassign", post(unassign))
        .route("/api/issues/{id}/close", post(close))
        .route("/api/issues/{id}/resolve", post(resolve))
        .route("/api/issues/{id}/reopen", post(reopen))
        .route("/api/issues/{id}/replies", post(reply))
        .route("/api/issues/{id}/comments", post(comment))
        .route("/api/issues/{id}/read", post(read))
        .route(
            "/api/messages/{id}",
            patch(edit_message).delete(delete_message),
        )
}

fn param_error(name: &str, why: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_parameter",
        format!("query parameter `{name}`: {why}"),
    )
}

fn parse_limit(q: &HashMap<String, String>) -> ApiResult<i64> {
    match q.get("limit") {
        None => Ok(20),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=100).contains(&n) => Ok(n),
            _ => Err(param_error("limit", "must be a whole number from 1 to 100")),
        },
    }
}

/// Issue list cursors are opaque to clients: base64url of `time|id`.
fn encode_cursor(at: DateTime<Utc>, id: i64) -> String {
    let raw = format!(
        "{}|{id}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cursor(s: &str) -> Option<(DateTime<Utc>, i64)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (at, id) = text.split_once('|')?;
    let at = DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc);
    Some((at, id.parse().ok()?))
}

async fn list(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let status = match q.get("status").map(String::as_str) {
        None | Some("") | Some("open") => Some(StatusFilter::Open),
        Some(s) => Some(StatusFilter::Is(IssueStatus::parse(s).ok_or_else(
            || {
                param_error(
                    "status",
                    "must be one of unassigned, assigned, closed, open",
                )
            },
        )?)),
    };
    let assignee = match q.get("assignee").map(String::as_str) {
        None | Some("") => None,
        Some("me") => Some(AssigneeFilter::Staff(me.id)),
        Some("none") => Some(AssigneeFilter::None),
        Some(id) => Some(AssigneeFilter::Staff(id.parse().map_err(|_| {
            param_error("assignee", "must be me, none or a staff id")
        })?)),
    };
    let customer = match q.get("customer").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            c.parse()
                .map_err(|_| param_error("customer", "must be a customer id"))?,
        ),
    };
    let cursor = match q.get("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            decode_cursor(c).ok_or_else(|| param_error("cursor", "not a cursor from this API"))?,
        ),
    };
    let limit = parse_limit(&q)?;
    // One row more than the page: whether it comes back tells if another
    // page exists, so the last page says `next_cursor: null` even when it
    // happens to be full (45 issues in pages of 15).
    let filter = IssueFilter {
        status,
        assignee,
        q: q.get("q").cloned(),
        customer,
        limit: limit + 1,
        cursor,
    };
    let (mut issues, counts) = state.store.list_issues(&filter, me.id).await?;
    let more = issues.len() as i64 > limit;
    issues.truncate(limit as usize);
    let next_cursor = more
        .then(|| {
            issues
                .last()
                .map(|i| encode_cursor(i.last_message_at, i.id))
        })
        .flatten();
    Ok(Json(
        json!({ "issues": issues, "next_cursor": next_cursor, "counts": counts }),
    ))
}

async fn detail(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(state.store.issue(id, me.id).await?)))
}

async fn messages(
    State(state): State<AppState>,
    Caller(_me): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let limit = parse_limit(&q)?;
    let before = match q.get("before").filter(|b| !b.is_empty()) {
        None => None,
        Some(b) => Some(
            b.parse::<i64>()
                .map_err(|_| param_error("before", "must be a message id"))?,
        ),
    };
    let (messages, next) = state.store.messages(id, before, limit).await?;
    Ok(Json(json!({ "messages": messages, "next_cursor": next })))
}

async fn act(
    state: &AppState,
    me: &crate::store::Staff,
    id: i64,
    action: IssueAction,
) -> ApiResult<Json<Value>> {
    let issue = state.store.transition(id, me, action).await?;
    tracing::info!(issue_id = id, staff_id = me.id, ?action, "issue action");
    Ok(Json(json!(issue)))
}

async fn take(
    State(s): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    act(&s, &me, id, IssueAction::Take).await
}

#[derive(Deserialize)]
struct AssignBody {
    assignee_id: i64,
}

async fn assign(
    State(s): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<AssignBody>,
) -> ApiResult<Json<Value>> {
    act(&s, &me, id, IssueAction::Assign(body.assignee_id)).await
}

async fn unassign(
    State(s): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    act(&s, &me, id, IssueAction::Unassign).await
}

async fn close(
    State(s): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    act(&s, &me, id, IssueAction::Close).await
}

async fn resolve(
    State(s): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    act(&s, &me, id, IssueAction::Resolve).await
}

async fn reopen(
    State(s): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    act(&s, &me, id, IssueAction::Reopen).await
}

#[derive(Deserialize)]
struct BodyOnly {
    body: String,
}

#[derive(Deserialize)]
struct ReplyBody {
    body: String,
    channel: Option<String>,
}

/// A non-empty body within limits.
fn check_body(body: &str) -> ApiResult<()> {
    if body.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_request",
            "`body` must not be empty",
        ));
    }
    if body.chars().count() > BODY_MAX_CHARS {
        return Err(ApiError::unprocessable(
            "body_too_long",
            "`body` is too long",
        ));
    }
    Ok(())
}

/// Refuses a channel that is not configured, before anything is stored.
fn check_channel(state: &AppState, channel: Channel, body: &str) -> ApiResult<()> {
    match channel {
        Channel::Sms if state.twilio.is_none() => Err(ApiError::unprocessable(
            "channel_unavailable",
            "the SMS channel is not configured",
        )),
        Channel::Sms if body.chars().count() > SMS_MAX_CHARS => Err(ApiError::unprocessable(
            "body_too_long",
            format!("an SMS reply may be at most {SMS_MAX_CHARS} characters"),
        )),
        Channel::Email if !state.config.smtp.enabled() => Err(ApiError::unprocessable(
            "channel_unavailable",
            "outbound email is not configured (the [smtp] section)",
        )),
        _ => Ok(()),
    }
}

async fn reply(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<ReplyBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    check_body(&req.body)?;
    let channel = match req.channel.as_deref() {
        None => None,
        Some(c) => Some(Channel::parse(c).ok_or_else(|| {
            ApiError::unprocessable("invalid_request", "`channel` must be sms or email")
        })?),
    };
    let issue = state.store.issue(id, me.id).await?;
    check_channel(&state, channel.unwrap_or(issue.channel), &req.body)?;
    let message = state.store.reply(id, &me, &req.body, channel).await?;
    state.outbox_wake.notify_one();
    tracing::info!(
        issue_id = id,
        message_id = message.id,
        staff_id = me.id,
        "reply queued"
    );
    Ok((StatusCode::ACCEPTED, Json(json!(message))))
}

async fn comment(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<BodyOnly>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    check_body(&req.body)?;
    let message = state.store.add_comment(id, &me, &req.body).await?;
    Ok((StatusCode::CREATED, Json(json!(message))))
}

async fn read(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    state.store.mark_read(id, me.id).await?;
    Ok(Json(json!(state.store.issue(id, me.id).await?)))
}

async fn edit_message(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<BodyOnly>,
) -> ApiResult<Json<Value>> {
    check_body(&req.body)?;
    Ok(Json(json!(
        state.store.edit_comment(id, &me, &req.body).await?
    )))
}

async fn delete_message(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    state.store.delete_comment(id, &me).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct CreateBody {
    customer_id: Option<i64>,
    contact: Option<String>,
    subject: Option<String>,
    body: String,
}

async fn create(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiJson(req): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    check_body(&req.body)?;
    let region = state.config.threading.default_region.as_ref();
    let contact = match req
        .contact
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        None => None,
        Some(c) => Some(
            Contact::parse(c, region)
                .map_err(|e| ApiError::unprocessable("invalid_contact", e.to_string()))?,
        ),
    };
    if contact.is_none() && req.customer_id.is_none() {
        return Err(ApiError::unprocessable(
            "invalid_request",
            "give `customer_id` or `contact`",
        ));
    }
    let channel = match (&contact, req.customer_id) {
        (Some(c), _) => c.channel(),
        (None, Some(id)) => {
            let customer = state.store.customer(id, me.id).await.map_err(|e| match e {
                crate::store::StoreError::NotFound(_) => {
                    ApiError::unprocessable("unknown_customer", "no customer with that id")
                }
                other => other.into(),
            })?;
            match customer.contacts.first().map(|c| c.kind) {
                Some(crate::domain::ContactKind::Email) => Channel::Email,
                _ => Channel::Sms,
            }
        }
        (None, None) => Channel::Sms,
    };
    check_channel(&state, channel, &req.body)?;
    let new = NewIssue {
        customer_id: req.customer_id,
        contact,
        subject: req.subject,
        body: req.body,
    };
    let issue = state.store.create_issue(&me, &new).await?;
    state.outbox_wake.notify_one();
    tracing::info!(
        issue_id = issue.id,
        staff_id = me.id,
        "staff opened an issue"
    );
    Ok((StatusCode::CREATED, Json(json!(issue))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let at = crate::store::now();
        let c = encode_cursor(at, 42);
        assert_eq!(decode_cursor(&c), Some((at, 42)));
        assert_eq!(decode_cursor("not-a-cursor"), None);
    }
}
