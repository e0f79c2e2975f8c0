//! The Issue Tracker: list, detail, timeline, the state machine actions,
//! replies, comments, read markers and staff-initiated issues.
//!
//! Each handler carries its `#[utoipa::path]` and is registered through
//! `routes!`, so the router and the OpenAPI document are one list.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Caller;
use super::error::{
    ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, AuthErrors, BodyErrors, ConflictError,
    NotFoundError, QueryErrors, RuleErrors,
};
use crate::domain::{Channel, Contact, IssueStatus};
use crate::store::{
    AssigneeFilter, IssueAction, IssueCounts, IssueFilter, IssueView, MessageView, NewIssue,
    StatusFilter,
};

/// Twilio refuses bodies over 1,600 characters.
pub(crate) use crate::domain::text::SMS_MAX_CHARS;
/// Largest reply or comment we accept.
const BODY_MAX_CHARS: usize = 100_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(detail))
        .routes(routes!(messages))
        .routes(routes!(take))
        .routes(routes!(assign))
        .routes(routes!(unassign))
        .routes(routes!(close))
        .routes(routes!(resolve))
        .routes(routes!(reopen))
        .routes(routes!(reply))
        .routes(routes!(comment))
        .routes(routes!(read))
        .routes(routes!(edit_message, delete_message))
}

fn param_error(name: &str, why: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_parameter",
        format!("query parameter `{name}`: {why}"),
    )
}

/// The query of `GET /api/issues`. Every value is read as text and
/// checked by the handler, so each bad one gets its own error.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `unassigned`, `assigned`, `closed` or `open` (not closed; the default)
    status: Option<String>,
    /// `me`, `none` or a staff id
    assignee: Option<String>,
    /// Search subject, customer name, phone or email
    q: Option<String>,
    /// Only this customer's issues
    #[param(value_type = Option<i64>)]
    customer: Option<String>,
    /// Page size (default 20)
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// `next_cursor` of the previous page
    cursor: Option<String>,
}

/// The query of `GET /api/issues/{id}/messages`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct MessagesQuery {
    /// Page size (default 20)
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// `next_cursor` of the previous page: loads older messages
    #[param(value_type = Option<i64>)]
    before: Option<String>,
}

fn parse_limit(limit: Option<&str>) -> ApiResult<i64> {
    match limit {
        None => Ok(20),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=100).contains(&n) => Ok(n),
            _ => Err(param_error("limit", "must be a whole number from 1 to 100")),
        },
    }
}

/// Issue list cursors are opaque to clients: base64url of `time|id`.
pub(crate) fn encode_cursor(at: DateTime<Utc>, id: i64) -> String {
    let raw = format!(
        "{}|{id}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

pub(crate) fn decode_cursor(s: &str) -> Option<(DateTime<Utc>, i64)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (at, id) = text.split_once('|')?;
    let at = DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc);
    Some((at, id.parse().ok()?))
}

/// `GET /api/issues`: one page of the list.
#[derive(Serialize, ToSchema)]
struct IssuePage {
    issues: Vec<IssueView>,
    /// Pass back as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
    counts: IssueCounts,
}

/// List issues, newest activity first
///
/// Without `status` the list shows open issues. `counts` honour every
/// filter except `status`.
#[utoipa::path(
    get,
    path = "/api/issues",
    operation_id = "list_issues",
    tag = "issues",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of issues", body = IssuePage),
        QueryErrors,
        AuthErrors,
    )
)]
async fn list(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<IssuePage>> {
    let status = match q.status.as_deref() {
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
    let assignee = match q.assignee.as_deref() {
        None | Some("") => None,
        Some("me") => Some(AssigneeFilter::Staff(me.id)),
        Some("none") => Some(AssigneeFilter::None),
        Some(id) => Some(AssigneeFilter::Staff(id.parse().map_err(|_| {
            param_error("assignee", "must be me, none or a staff id")
        })?)),
    };
    let customer = match q.customer.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            c.parse()
                .map_err(|_| param_error("customer", "must be a customer id"))?,
        ),
    };
    let cursor = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            decode_cursor(c).ok_or_else(|| param_error("cursor", "not a cursor from this API"))?,
        ),
    };
    let limit = parse_limit(q.limit.as_deref())?;
    // One row more than the page: whether it comes back tells if another
    // page exists, so the last page says `next_cursor: null` even when it
    // happens to be full (45 issues in pages of 15).
    let filter = IssueFilter {
        status,
        assignee,
        q: q.q,
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
    Ok(Json(IssuePage {
        issues,
        next_cursor,
        counts,
    }))
}

/// One issue
#[utoipa::path(
    get,
    path = "/api/issues/{id}",
    tag = "issues",
    params(("id" = i64, Path, description = "Issue id")),
    responses(
        (status = 200, description = "The issue", body = IssueView),
        NotFoundError,
        AuthErrors,
    )
)]
async fn detail(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<IssueView>> {
    Ok(Json(state.store.issue(id, me.id).await?))
}

/// `GET /api/issues/{id}/messages`: one page of the timeline.
#[derive(Serialize, ToSchema)]
struct MessagePage {
    /// Oldest first.
    messages: Vec<MessageView>,
    /// Pass back as `before` to load the older page; null at the start.
    next_cursor: Option<i64>,
}

/// An issue's timeline, oldest first
#[utoipa::path(
    get,
    path = "/api/issues/{id}/messages",
    tag = "issues",
    params(("id" = i64, Path, description = "Issue id"), MessagesQuery),
    responses(
        (status = 200, description = "A page of the timeline", body = MessagePage),
        QueryErrors,
        NotFoundError,
        AuthErrors,
    )
)]
async fn messages(
    State(state): State<AppState>,
    Caller(_me): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<MessagesQuery>,
) -> ApiResult<Json<MessagePage>> {
    let limit = parse_limit(q.limit.as_deref())?;
    let before = match q.before.as_deref().filter(|b| !b.is_empty()) {
        None => None,
        Some(b) => Some(
            b.parse::<i64>()
                .map_err(|_| param_error("before", "must be a message id"))?,
        ),
    };
    let (messages, next) = state.store.messages(id, before, limit).await?;
    Ok(Json(MessagePage {
        messages,
        next_cursor: next,
    }))
}

async fn act(
    state: &AppState,
    me: &crate::store::Staff,
    id: i64,
    action: IssueAction,
) -> ApiResult<Json<IssueView>> {
    let issue = state.store.transition(id, me, action).await?;
    tracing::info!(issue_id = id, staff_id = me.id, ?action, "issue action");
    Ok(Json(issue))
}

/// The state machine actions that take no body: alike but for path and
/// action, so one macro writes each handler with its `#[utoipa::path]`.
macro_rules! action {
    ($(#[doc = $doc:literal])* $name:ident, $path:tt, $action:expr) => {
        $(#[doc = $doc])*
        #[utoipa::path(
            post,
            path = $path,
            tag = "issues",
            params(("id" = i64, Path, description = "Issue id")),
            responses(
                (status = 200, description = "The issue after the action", body = IssueView),
                RuleErrors,
                NotFoundError,
                ConflictError,
                AuthErrors,
            )
        )]
        async fn $name(
            State(s): State<AppState>,
            Caller(me): Caller,
            ApiPath(id): ApiPath<i64>,
        ) -> ApiResult<Json<IssueView>> {
            act(&s, &me, id, $action).await
        }
    };
}

action!(
    /// Take It: assign the issue to the caller
    take, "/api/issues/{id}/take", IssueAction::Take
);
action!(
    /// Unassign
    unassign, "/api/issues/{id}/unassign", IssueAction::Unassign
);
action!(
    /// Mark as Closed
    close, "/api/issues/{id}/close", IssueAction::Close
);
action!(
    /// Resolve
    resolve, "/api/issues/{id}/resolve", IssueAction::Resolve
);
action!(
    /// Reopen a closed issue
    reopen, "/api/issues/{id}/reopen", IssueAction::Reopen
);

/// `POST /api/issues/{id}/assign`.
#[derive(Deserialize, ToSchema)]
#[schema(as = Assign)]
struct AssignBody {
    /// The staff member to assign.
    assignee_id: i64,
}

/// Assign It
#[utoipa::path(
    post,
    path = "/api/issues/{id}/assign",
    tag = "issues",
    params(("id" = i64, Path, description = "Issue id")),
    request_body = AssignBody,
    responses(
        (status = 200, description = "The issue, now assigned", body = IssueView),
        BodyErrors,
        RuleErrors,
        NotFoundError,
        ConflictError,
        AuthErrors,
    )
)]
async fn assign(
    State(s): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<AssignBody>,
) -> ApiResult<Json<IssueView>> {
    act(&s, &me, id, IssueAction::Assign(body.assignee_id)).await
}

/// A private comment, new or edited.
#[derive(Deserialize, ToSchema)]
#[schema(as = Comment)]
struct BodyOnly {
    body: String,
}

/// A reply to the customer.
#[derive(Deserialize, ToSchema)]
#[schema(as = Reply)]
struct ReplyBody {
    body: String,
    /// `sms` or `email`; the issue's own channel when absent.
    channel: Option<String>,
}

/// A non-empty body within limits.
pub(crate) fn check_body(body: &str) -> ApiResult<()> {
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
pub(crate) fn check_channel(state: &AppState, channel: Channel, body: &str) -> ApiResult<()> {
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

/// Reply to the customer
///
/// Goes out over the issue's channel (or `channel`) through the outbox;
/// the answer is the message with `delivery.status = "queued"`.
#[utoipa::path(
    post,
    path = "/api/issues/{id}/replies",
    tag = "issues",
    params(("id" = i64, Path, description = "Issue id")),
    request_body = ReplyBody,
    responses(
        (status = 202, description = "The reply, queued for delivery", body = MessageView),
        BodyErrors,
        NotFoundError,
        ConflictError,
        AuthErrors,
    )
)]
async fn reply(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<ReplyBody>,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
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
    Ok((StatusCode::ACCEPTED, Json(message)))
}

/// Add a private comment
#[utoipa::path(
    post,
    path = "/api/issues/{id}/comments",
    tag = "issues",
    params(("id" = i64, Path, description = "Issue id")),
    request_body = BodyOnly,
    responses(
        (status = 201, description = "The comment", body = MessageView),
        BodyErrors,
        NotFoundError,
        AuthErrors,
    )
)]
async fn comment(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<BodyOnly>,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
    check_body(&req.body)?;
    let message = state.store.add_comment(id, &me, &req.body).await?;
    Ok((StatusCode::CREATED, Json(message)))
}

/// Mark the issue read for the caller
#[utoipa::path(
    post,
    path = "/api/issues/{id}/read",
    operation_id = "mark_issue_read",
    tag = "issues",
    params(("id" = i64, Path, description = "Issue id")),
    responses(
        (status = 200, description = "The issue, `unread: false`", body = IssueView),
        NotFoundError,
        AuthErrors,
    )
)]
async fn read(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<IssueView>> {
    state.store.mark_read(id, me.id).await?;
    Ok(Json(state.store.issue(id, me.id).await?))
}

/// Edit a private comment
///
/// Its author within 5 hours, an admin at any time; replies cannot be
/// edited.
#[utoipa::path(
    patch,
    path = "/api/messages/{id}",
    tag = "issues",
    params(("id" = i64, Path, description = "Message id")),
    request_body = BodyOnly,
    responses(
        (status = 200, description = "The comment, with `edited_at`", body = MessageView),
        BodyErrors,
        RuleErrors,
        NotFoundError,
        ConflictError,
        AuthErrors,
    )
)]
async fn edit_message(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<BodyOnly>,
) -> ApiResult<Json<MessageView>> {
    check_body(&req.body)?;
    Ok(Json(state.store.edit_comment(id, &me, &req.body).await?))
}

/// Delete a private comment
///
/// Same rules as editing; a deleted comment is gone (404).
#[utoipa::path(
    delete,
    path = "/api/messages/{id}",
    tag = "issues",
    params(("id" = i64, Path, description = "Message id")),
    responses(
        (status = 204, description = "Deleted"),
        RuleErrors,
        NotFoundError,
        ConflictError,
        AuthErrors,
    )
)]
async fn delete_message(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    state.store.delete_comment(id, &me).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A staff-initiated issue: give `customer_id` or `contact`.
#[derive(Deserialize, ToSchema)]
#[schema(as = NewIssue)]
struct CreateBody {
    customer_id: Option<i64>,
    /// A phone number (E.164 or national) or an email address.
    contact: Option<String>,
    subject: Option<String>,
    body: String,
}

/// Open an issue to a customer (New Ticket)
///
/// Opens an issue assigned to the caller and sends `body` as its first
/// message. 409 `customer_has_open_issue` (with `issue_id`) when the
/// customer already has an open issue: reply there.
#[utoipa::path(
    post,
    path = "/api/issues",
    operation_id = "create_issue",
    tag = "issues",
    request_body = CreateBody,
    responses(
        (status = 201, description = "The new issue", body = IssueView),
        BodyErrors,
        ConflictError,
        AuthErrors,
    )
)]
async fn create(
    State(state): State<AppState>,
    Caller(me): Caller,
    ApiJson(req): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<IssueView>)> {
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
    Ok((StatusCode::CREATED, Json(issue)))
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
