//! The admin HTTP API end to end (SPEC §2, §4, §4.1): authentication, error
//! shapes, every row of the state machine, the issue list and its cursor,
//! the timeline, read markers, comments, staff administration, View
//! Customer, New Ticket and the health endpoints. Every test drives the real
//! application over HTTP and runs on SQLite and on PostgreSQL.
//!
//! Issues are opened the way production opens them, by a signed Twilio
//! webhook; the few facts HTTP cannot produce (a comment written six hours
//! ago, a customer with a display name, an issue the system closed) are set
//! up through the test database's raw handle and named as such.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wiremock::matchers::{basic_auth, body_string_contains, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::Backend;
use crate::spawn::{ACCOUNT_SID, AUTH_TOKEN, Resp, TestApp, spawn_app};

const ALICE: &str = "+15550100101";
const BOB: &str = "+15550100102";
const CAROL: &str = "+15550100103";
const DAVE: &str = "+15550100104";

// ------------------------------------------------------------------ helpers

/// A process-wide unique Twilio `MessageSid`.
fn sid() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("SM{:032x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn messages_path() -> String {
    format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
}

/// Accepts every outbound SMS, so replies in a test do not fail noisily.
async fn accept_sms(app: &TestApp) {
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"sid": sid(), "status": "queued"})),
        )
        .mount(&app.twilio)
        .await;
}

/// An inbound SMS from `from`; returns the issue it landed on.
async fn sms_issue(app: &TestApp, from: &str, body: &str) -> i64 {
    app.sms_issue(&sid(), from, body).await
}

/// Any request, with full control over headers and body.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    auth: Option<&str>,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
) -> Resp {
    let mut req = app.http.request(method, format!("{}{}", app.base, path));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        body,
        text,
        headers,
    }
}

async fn patch(app: &TestApp, path: &str, token: &str, body: Value) -> Resp {
    app.request(Method::PATCH, path, Some(token), Some(body))
        .await
}

async fn delete(app: &TestApp, path: &str, token: &str) -> Resp {
    app.request(Method::DELETE, path, Some(token), None).await
}

/// `POST /api/issues/{id}/{action}` with no body.
async fn act(app: &TestApp, issue: i64, action: &str, token: &str) -> Resp {
    app.request(
        Method::POST,
        &format!("/api/issues/{issue}/{action}"),
        Some(token),
        None,
    )
    .await
}

async fn assign(app: &TestApp, issue: i64, to: i64, token: &str) -> Resp {
    app.post(
        &format!("/api/issues/{issue}/assign"),
        token,
        json!({ "assignee_id": to }),
    )
    .await
}

async fn issue(app: &TestApp, id: i64, token: &str) -> Value {
    let r = app.get(&format!("/api/issues/{id}"), token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

async fn timeline(app: &TestApp, id: i64) -> Vec<Value> {
    let r = app
        .get(
            &format!("/api/issues/{id}/messages?limit=100"),
            &app.admin_token,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["next_cursor"], Value::Null);
    r.body["messages"].as_array().expect("messages").clone()
}

async fn events(app: &TestApp, id: i64) -> Vec<Value> {
    timeline(app, id)
        .await
        .into_iter()
        .filter(|m| m["kind"] == "event")
        .collect()
}

/// The caller's view of the list for a query string.
pub(crate) async fn list(app: &TestApp, query: &str, token: &str) -> Value {
    let r = app.get(&format!("/api/issues{query}"), token).await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text);
    r.body
}

pub(crate) fn ids(list: &Value) -> Vec<i64> {
    list["issues"]
        .as_array()
        .expect("issues")
        .iter()
        .map(|i| i["id"].as_i64().expect("id"))
        .collect()
}

/// The id of the first admin (`admin@localhost`).
async fn admin_id(app: &TestApp) -> i64 {
    app.get("/api/me", &app.admin_token).await.body["id"]
        .as_i64()
        .expect("admin id")
}

fn person(id: i64, name: &str) -> Value {
    json!({ "id": id, "name": name })
}

/// An RFC 3339 timestamp in UTC.
#[track_caller]
fn assert_utc(v: &Value, what: &str) -> DateTime<Utc> {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {v}"));
    assert!(s.ends_with('Z'), "{what}: not UTC: {s}");
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{what}: not RFC 3339: {s}: {e}"))
        .with_timezone(&Utc)
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

/// `{"error": {"code", "message"}}` and nothing else (plus `extra` keys in
/// the error object), served as JSON.
#[track_caller]
fn assert_error_shape(r: &Resp, extra: &[&str]) {
    assert!(
        r.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json")),
        "error not served as JSON: {:?} {}",
        r.headers.get("content-type"),
        r.text
    );
    assert_eq!(keys(&r.body), vec!["error"], "{}", r.text);
    let mut want = vec!["code", "message"];
    want.extend_from_slice(extra);
    want.sort_unstable();
    assert_eq!(keys(&r.body["error"]), want, "{}", r.text);
    let code = r.body["error"]["code"].as_str().expect("code is a string");
    assert!(
        !code.is_empty()
            && code
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        "code is not snake_case: {code}"
    );
    let message = r.body["error"]["message"]
        .as_str()
        .expect("message is a string");
    assert!(!message.trim().is_empty(), "empty error message");
}

#[track_caller]
fn assert_error(r: &Resp, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_error_shape(r, &[]);
    assert_eq!(r.code(), code, "{}", r.text);
}

/// The fields of SPEC §4.1 on an issue (also checked in the OpenAPI schema).
pub const ISSUE_FIELDS: &[&str] = &[
    "id",
    "status",
    "subject",
    "channel",
    "customer",
    "assignee",
    "closed_by",
    "resolution",
    "previous_issue_id",
    "ack_only",
    "created_at",
    "updated_at",
    "last_message_at",
    "closed_at",
    "last_message_preview",
    "message_count",
    "unread",
];

/// The fields of SPEC §4.1 on a message (also checked in the OpenAPI schema).
pub const MESSAGE_FIELDS: &[&str] = &[
    "id",
    "issue_id",
    "kind",
    "channel",
    "author",
    "body",
    "created_at",
    "edited_at",
    "attachments",
    "refused_attachments",
    "threading_rule",
    "delivery",
    "event",
];

/// The fields of SPEC §4.1 on an issue, with their types.
#[track_caller]
fn assert_issue_shape(i: &Value) {
    for k in ISSUE_FIELDS {
        assert!(i.get(k).is_some(), "issue lacks `{k}`: {i}");
    }
    assert!(i["id"].is_i64());
    assert!(
        ["unassigned", "assigned", "closed"].contains(&i["status"].as_str().unwrap()),
        "{i}"
    );
    assert!(i["subject"].is_string());
    assert!(["sms", "email"].contains(&i["channel"].as_str().unwrap()));
    assert_eq!(
        keys(&i["customer"]),
        vec!["email", "id", "name", "phone"],
        "{i}"
    );
    assert!(i["customer"]["id"].is_i64());
    assert!(i["customer"]["name"].is_string());
    for k in ["assignee", "closed_by"] {
        if !i[k].is_null() {
            assert_eq!(keys(&i[k]), vec!["id", "name"], "{k}: {i}");
            assert!(i[k]["id"].is_i64() && i[k]["name"].is_string());
        }
    }
    assert!(i["ack_only"].is_boolean());
    assert!(i["unread"].is_boolean());
    assert!(i["message_count"].is_i64());
    assert!(i["previous_issue_id"].is_null() || i["previous_issue_id"].is_i64());
    assert!(i["last_message_preview"].is_null() || i["last_message_preview"].is_string());
    for k in ["created_at", "updated_at", "last_message_at"] {
        assert_utc(&i[k], k);
    }
    if i["status"] == "closed" {
        assert_utc(&i["closed_at"], "closed_at");
        assert!(["closed", "resolved"].contains(&i["resolution"].as_str().unwrap()));
    } else {
        assert_eq!(i["closed_at"], Value::Null, "{i}");
        assert_eq!(i["resolution"], Value::Null, "{i}");
        assert_eq!(i["closed_by"], Value::Null, "{i}");
    }
    match i["status"].as_str() {
        Some("unassigned") => assert_eq!(i["assignee"], Value::Null),
        Some("assigned") => assert!(i["assignee"].is_object()),
        _ => {}
    }
}

/// The fields of SPEC §4.1 on a message, with "fields that do not apply
/// are null".
#[track_caller]
fn assert_message_shape(m: &Value) {
    for k in MESSAGE_FIELDS {
        assert!(m.get(k).is_some(), "message lacks `{k}`: {m}");
    }
    assert!(m["id"].is_i64() && m["issue_id"].is_i64());
    assert_eq!(keys(&m["author"]), vec!["id", "name", "type"], "{m}");
    assert!(m["author"]["name"].is_string());
    assert!(m["body"].is_string());
    assert_utc(&m["created_at"], "created_at");
    assert!(m["attachments"].is_array() && m["refused_attachments"].is_array());
    let kind = m["kind"].as_str().expect("kind");
    if kind == "customer" {
        assert!(m["threading_rule"].is_string(), "{m}");
    } else {
        assert_eq!(m["threading_rule"], Value::Null, "{m}");
    }
    if kind == "reply" {
        assert_eq!(keys(&m["delivery"]), vec!["error", "status"], "{m}");
    } else {
        assert_eq!(m["delivery"], Value::Null, "{m}");
    }
    if kind == "event" {
        assert_eq!(keys(&m["event"]), vec!["actor", "type"], "{m}");
    } else {
        assert_eq!(m["event"], Value::Null, "{m}");
    }
    match kind {
        "customer" => assert_eq!(m["author"]["type"], "customer"),
        "reply" | "comment" => assert_eq!(m["author"]["type"], "staff"),
        "event" => assert!(["staff", "system"].contains(&m["author"]["type"].as_str().unwrap())),
        other => panic!("unknown kind {other}"),
    }
}

/// The last event of an issue: its type and actor.
#[track_caller]
fn assert_event(e: &Value, kind: &str, actor: Option<(i64, &str)>) {
    assert_message_shape(e);
    assert_eq!(e["kind"], "event");
    assert_eq!(e["event"]["type"], kind, "{e}");
    match actor {
        Some((id, name)) => {
            assert_eq!(e["event"]["actor"], person(id, name), "{e}");
        }
        None => assert_eq!(e["event"]["actor"], Value::Null, "{e}"),
    }
    assert!(!e["body"].as_str().unwrap().is_empty());
}

// --------------------------------------------------------------- auth

async fn requests_without_a_valid_token_get_401(b: Backend) {
    let app = spawn_app(b).await;
    let issue = sms_issue(&app, ALICE, "Hello").await;
    let routes = [
        (Method::GET, "/api/issues".to_string()),
        (Method::GET, format!("/api/issues/{issue}")),
        (Method::GET, format!("/api/issues/{issue}/messages")),
        (Method::POST, format!("/api/issues/{issue}/take")),
        (Method::GET, "/api/me".to_string()),
        (Method::GET, "/api/staff".to_string()),
        (Method::GET, "/api/rejected".to_string()),
    ];
    let bad_headers = [
        None,
        Some("".to_string()),
        Some("Bearer".to_string()),
        Some("Bearer ".to_string()),
        Some(format!("Basic {}", app.admin_token)),
        Some(format!("Token {}", app.admin_token)),
        Some(app.admin_token.clone()),
        Some("Bearer not-a-real-token".to_string()),
        Some(format!("Bearer {}x", app.admin_token)),
    ];
    for (m, p) in &routes {
        for h in &bad_headers {
            let r = send(&app, m.clone(), p, h.as_deref(), None, None).await;
            assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
            let www = r
                .headers
                .get("www-authenticate")
                .unwrap_or_else(|| panic!("{m} {p} {h:?}: no WWW-Authenticate"))
                .to_str()
                .unwrap();
            assert!(www.starts_with("Bearer"), "{www}");
        }
    }
    // Nothing happened to the issue.
    assert_eq!(issue_status(&app, issue).await, "unassigned");

    // The real token works, spelled as RFC 6750 allows.
    let ok = send(
        &app,
        Method::GET,
        "/api/me",
        Some(&format!("Bearer {}", app.admin_token)),
        None,
        None,
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);

    // A deactivated staff member's token stops working at once.
    let (agent, token) = app.add_staff("Agent Gone", "agent").await;
    assert_eq!(app.get("/api/me", &token).await.status, StatusCode::OK);
    let r = patch(
        &app,
        &format!("/api/staff/{agent}"),
        &app.admin_token,
        json!({"active": false}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for (m, p) in &routes {
        let r = app.request(m.clone(), p, Some(&token), None).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(r.headers.contains_key("www-authenticate"));
    }
    app.stop().await;
}

async fn issue_status(app: &TestApp, id: i64) -> String {
    issue(app, id, &app.admin_token).await["status"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn agents_get_403_on_admin_routes(b: Backend) {
    let app = spawn_app(b).await;
    let (agent, token) = app.add_staff("Agent Smith", "agent").await;
    let admin = admin_id(&app).await;
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/staff".into(), None),
        (
            Method::POST,
            "/api/staff".into(),
            Some(json!({"email": "new@example.test", "name": "New", "role": "admin"})),
        ),
        (
            Method::PATCH,
            format!("/api/staff/{agent}"),
            Some(json!({"role": "admin"})),
        ),
        (
            Method::PATCH,
            format!("/api/staff/{admin}"),
            Some(json!({"active": false})),
        ),
        (Method::POST, format!("/api/staff/{agent}/tokens"), None),
        (Method::POST, format!("/api/staff/{admin}/tokens"), None),
        (Method::GET, "/api/rejected".into(), None),
    ];
    for (m, p, body) in &attempts {
        let r = app.request(m.clone(), p, Some(&token), body.clone()).await;
        assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    }
    // Even a malformed body is refused for the role first.
    let r = send(
        &app,
        Method::POST,
        "/api/staff",
        Some(&format!("Bearer {token}")),
        Some("application/json"),
        Some(b"{not json".to_vec()),
    )
    .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");

    // Nothing changed: still two staff, the agent still an agent, the
    // admin still active, and no token was minted.
    let staff = app.get("/api/staff", &app.admin_token).await;
    assert_eq!(staff.status, StatusCode::OK);
    let list = staff.body["staff"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let me = app.get("/api/me", &token).await;
    assert_eq!(me.body["role"], "agent");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM api_tokens").await, 2);
    // The same routes answer the admin.
    assert_eq!(
        app.get("/api/rejected", &app.admin_token).await.status,
        StatusCode::OK
    );
    app.stop().await;
}

// --------------------------------------------------------------- errors

async fn errors_are_json_with_a_code_and_a_message(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.admin_token.clone();
    let bearer = format!("Bearer {t}");
    let issue = sms_issue(&app, ALICE, "Hello").await;

    // Unknown routes, with and without a token.
    for p in ["/api/nope", "/nope", "/api/issues/1/frobnicate", "/api"] {
        let r = app.get(p, &t).await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
        let r = send(&app, Method::GET, p, None, None, None).await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    }
    // Unknown and non-numeric issue ids, on every issue route.
    for id in ["999999", "abc", "1.5", "-x", "99999999999999999999999"] {
        for (m, suffix) in [
            (Method::GET, ""),
            (Method::GET, "/messages"),
            (Method::POST, "/take"),
            (Method::POST, "/unassign"),
            (Method::POST, "/close"),
            (Method::POST, "/resolve"),
            (Method::POST, "/reopen"),
            (Method::POST, "/read"),
        ] {
            let r = app
                .request(
                    m.clone(),
                    &format!("/api/issues/{id}{suffix}"),
                    Some(&t),
                    None,
                )
                .await;
            assert_error(&r, StatusCode::NOT_FOUND, "not_found");
        }
        for (suffix, body) in [
            ("/comments", json!({"body": "x"})),
            ("/replies", json!({"body": "x"})),
            ("/assign", json!({"assignee_id": 1})),
        ] {
            let r = app
                .post(&format!("/api/issues/{id}{suffix}"), &t, body)
                .await;
            assert_error(&r, StatusCode::NOT_FOUND, "not_found");
        }
        let r = patch(
            &app,
            &format!("/api/messages/{id}"),
            &t,
            json!({"body": "x"}),
        )
        .await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
        let r = delete(&app, &format!("/api/messages/{id}"), &t).await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
        let r = app.get(&format!("/api/customers/{id}"), &t).await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
        let r = patch(&app, &format!("/api/staff/{id}"), &t, json!({"name": "x"})).await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
        let r = app
            .request(
                Method::POST,
                &format!("/api/staff/{id}/tokens"),
                Some(&t),
                None,
            )
            .await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    }

    let comments = format!("/api/issues/{issue}/comments");
    let json_ct = Some("application/json");
    // Malformed JSON: 400.
    for raw in [
        &b"{"[..],
        b"{\"body\": ",
        b"not json",
        b"{\"body\": \"x\",}",
    ] {
        let r = send(
            &app,
            Method::POST,
            &comments,
            Some(&bearer),
            json_ct,
            Some(raw.to_vec()),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{raw:?}: {}", r.text);
        assert_error_shape(&r, &[]);
    }
    // Well-formed JSON without the required fields, or of the wrong type: 422.
    for body in [
        json!({}),
        json!({"text": "x"}),
        json!({"body": 5}),
        json!([]),
    ] {
        let r = app.post(&comments, &t, body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.text
        );
        assert_error_shape(&r, &[]);
    }
    for body in [json!({}), json!({"assignee_id": "one"})] {
        let r = app
            .post(&format!("/api/issues/{issue}/assign"), &t, body)
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_error_shape(&r, &[]);
    }
    // An empty body lacks the required fields just the same: 422.
    for ct in [json_ct, None] {
        for p in [
            comments.clone(),
            format!("/api/issues/{issue}/assign"),
            "/api/issues".to_string(),
            "/api/staff".to_string(),
        ] {
            let r = send(&app, Method::POST, &p, Some(&bearer), ct, Some(Vec::new())).await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{p} {ct:?}: {}",
                r.text
            );
            assert_error_shape(&r, &[]);
        }
        let r = send(&app, Method::POST, &comments, Some(&bearer), ct, None).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_error_shape(&r, &[]);
    }
    // A blank comment.
    let r = app.post(&comments, &t, json!({"body": "  \n "})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_error_shape(&r, &[]);
    // A body over the API's limit.
    let huge = "x".repeat(2 * 1024 * 1024);
    let r = app.post(&comments, &t, json!({ "body": huge })).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // The unread rest of that body makes the connection unusable: the
    // server says so, so clients do not reuse it.
    assert_eq!(r.headers["connection"], "close");

    // Bad query parameters: 400.
    for q in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=abc",
        "status=bogus",
        "status=OPEN",
        "cursor=garbage",
        "cursor=%%%",
        "assignee=someone",
        "customer=abc",
    ] {
        let r = app.get(&format!("/api/issues?{q}"), &t).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_parameter");
    }
    for q in ["limit=0", "limit=101", "before=abc"] {
        let r = app
            .get(&format!("/api/issues/{issue}/messages?{q}"), &t)
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_parameter");
    }
    // The boundaries are accepted.
    for q in ["limit=1", "limit=100"] {
        assert_eq!(
            app.get(&format!("/api/issues?{q}"), &t).await.status,
            StatusCode::OK
        );
    }

    // A route that exists, with a method it does not have.
    for (m, p) in [
        (Method::DELETE, "/api/issues".to_string()),
        (Method::PUT, format!("/api/issues/{issue}")),
        (Method::GET, format!("/api/issues/{issue}/take")),
    ] {
        let r = app.request(m, &p, Some(&t), None).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{p}: {}", r.text);
        assert_error_shape(&r, &[]);
        assert!(r.headers.contains_key("allow"), "{:?}", r.headers);
    }

    // None of this changed the issue.
    let i = issue_status(&app, issue).await;
    assert_eq!(i, "unassigned");
    assert_eq!(timeline(&app, issue).await.len(), 1);
    app.stop().await;
}

// --------------------------------------------------------------- state machine

async fn take_it(b: Backend) {
    let app = spawn_app(b).await;
    let (a, ta) = app.add_staff("Agent A", "agent").await;
    let (_, tb) = app.add_staff("Agent B", "agent").await;
    let id = sms_issue(&app, ALICE, "Help").await;

    let r = act(&app, id, "take", &ta).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_issue_shape(&r.body);
    assert_eq!(r.body["id"], id);
    assert_eq!(r.body["status"], "assigned");
    assert_eq!(r.body["assignee"], person(a, "Agent A"));
    assert_eq!(r.body["resolution"], Value::Null);
    let ev = events(&app, id).await;
    assert_eq!(ev.len(), 1);
    assert_event(&ev[0], "taken", Some((a, "Agent A")));
    assert_eq!(ev[0]["author"]["type"], "staff");
    assert_eq!(ev[0]["author"]["id"], a);

    // Someone else got there first: 409, for agents and admins alike.
    for t in [&tb, &app.admin_token] {
        let r = act(&app, id, "take", t).await;
        assert_error(&r, StatusCode::CONFLICT, "already_assigned");
    }
    let i = issue(&app, id, &app.admin_token).await;
    assert_eq!(i["assignee"], person(a, "Agent A"));
    assert_eq!(events(&app, id).await.len(), 1);
    app.stop().await;
}

async fn assign_it(b: Backend) {
    let app = spawn_app(b).await;
    let (a, ta) = app.add_staff("Agent A", "agent").await;
    let (bb, _) = app.add_staff("Agent B", "agent").await;
    let (gone, _) = app.add_staff("Agent Gone", "agent").await;
    let admin = admin_id(&app).await;
    let r = patch(
        &app,
        &format!("/api/staff/{gone}"),
        &app.admin_token,
        json!({"active": false}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let id = sms_issue(&app, ALICE, "Help").await;

    // An unassigned issue, assigned by an agent to someone else.
    let r = assign(&app, id, bb, &ta).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "assigned");
    assert_eq!(r.body["assignee"], person(bb, "Agent B"));
    // An assigned issue, reassigned by an admin.
    let r = assign(&app, id, a, &app.admin_token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["assignee"], person(a, "Agent A"));
    let ev = events(&app, id).await;
    assert_eq!(ev.len(), 2);
    assert_event(&ev[0], "assigned", Some((a, "Agent A")));
    assert_event(&ev[1], "assigned", Some((admin, "Admin")));

    // Inactive or unknown staff: 422, and nothing changes.
    for to in [gone, 999_999, -1] {
        let r = assign(&app, id, to, &ta).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "unknown_assignee");
    }
    let unassigned = sms_issue(&app, BOB, "Hi").await;
    let r = assign(&app, unassigned, gone, &app.admin_token).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "unknown_assignee");
    assert_eq!(issue_status(&app, unassigned).await, "unassigned");
    let i = issue(&app, id, &app.admin_token).await;
    assert_eq!(i["assignee"], person(a, "Agent A"));
    assert_eq!(events(&app, id).await.len(), 2);
    app.stop().await;
}

async fn unassign(b: Backend) {
    let app = spawn_app(b).await;
    let (a, ta) = app.add_staff("Agent A", "agent").await;
    let (_, tb) = app.add_staff("Agent B", "agent").await;
    let admin = admin_id(&app).await;
    let id = sms_issue(&app, ALICE, "Help").await;

    // By the assignee.
    assert_eq!(act(&app, id, "take", &ta).await.status, StatusCode::OK);
    let r = act(&app, id, "unassign", &ta).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "unassigned");
    assert_eq!(r.body["assignee"], Value::Null);
    assert_event(
        events(&app, id).await.last().unwrap(),
        "unassigned",
        Some((a, "Agent A")),
    );

    // By another agent: 403 forbidden; by an admin: fine.
    assert_eq!(act(&app, id, "take", &ta).await.status, StatusCode::OK);
    let r = act(&app, id, "unassign", &tb).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(issue(&app, id, &tb).await["assignee"], person(a, "Agent A"));
    let r = act(&app, id, "unassign", &app.admin_token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "unassigned");
    assert_event(
        events(&app, id).await.last().unwrap(),
        "unassigned",
        Some((admin, "Admin")),
    );
    let types: Vec<Value> = events(&app, id)
        .await
        .iter()
        .map(|e| e["event"]["type"].clone())
        .collect();
    assert_eq!(
        types,
        vec!["taken", "unassigned", "taken", "unassigned"],
        "the refused unassign left no event"
    );
    app.stop().await;
}

async fn close_and_resolve(b: Backend) {
    let app = spawn_app(b).await;
    let (a, ta) = app.add_staff("Agent A", "agent").await;
    let (bid, tb) = app.add_staff("Agent B", "agent").await;
    let bname = "Agent B";
    let phones = [ALICE, BOB];
    for ((action, resolution), phone) in [("close", "closed"), ("resolve", "resolved")]
        .into_iter()
        .zip(phones)
    {
        // Unassigned: any staff may close it.
        let id = sms_issue(&app, phone, "Thanks, all good").await;
        let r = act(&app, id, action, &tb).await;
        assert_eq!(r.status, StatusCode::OK, "{action}: {}", r.text);
        assert_issue_shape(&r.body);
        assert_eq!(r.body["status"], "closed");
        assert_eq!(r.body["resolution"], resolution);
        assert_eq!(r.body["closed_by"], person(bid, bname));
        let closed_at = assert_utc(&r.body["closed_at"], "closed_at");
        assert!((Utc::now() - closed_at).num_seconds().abs() < 60);
        assert_event(
            events(&app, id).await.last().unwrap(),
            resolution,
            Some((bid, bname)),
        );
        // GET shows the same.
        let g = issue(&app, id, &app.admin_token).await;
        assert_eq!(g["resolution"], resolution);
        assert_eq!(g["closed_by"], person(bid, bname));
        assert_eq!(g["closed_at"], r.body["closed_at"]);

        // Assigned to A: B and the admin are refused, A may.
        let r = act(&app, id, "reopen", &tb).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(act(&app, id, "take", &ta).await.status, StatusCode::OK);
        for t in [&tb, &app.admin_token] {
            let r = act(&app, id, action, t).await;
            assert_error(&r, StatusCode::FORBIDDEN, "not_assignee");
        }
        assert_eq!(issue_status(&app, id).await, "assigned");
        let r = act(&app, id, action, &ta).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["status"], "closed");
        assert_eq!(r.body["resolution"], resolution);
        assert_eq!(r.body["closed_by"], person(a, "Agent A"));
        // The previous assignee is still shown on the closed issue.
        assert_eq!(r.body["assignee"], person(a, "Agent A"));
        assert_event(
            events(&app, id).await.last().unwrap(),
            resolution,
            Some((a, "Agent A")),
        );
    }
    app.stop().await;
}

async fn closed_issues_refuse_every_action_but_reopen(b: Backend) {
    let app = spawn_app(b).await;
    accept_sms(&app).await;
    let (a, ta) = app.add_staff("Agent A", "agent").await;
    let id = sms_issue(&app, ALICE, "Help").await;
    assert_eq!(act(&app, id, "take", &ta).await.status, StatusCode::OK);
    assert_eq!(act(&app, id, "close", &ta).await.status, StatusCode::OK);
    let before = issue(&app, id, &app.admin_token).await;
    let n = timeline(&app, id).await.len();

    for t in [&ta, &app.admin_token] {
        for action in ["take", "unassign", "close", "resolve"] {
            let r = act(&app, id, action, t).await;
            assert_error(&r, StatusCode::CONFLICT, "issue_closed");
        }
        let r = assign(&app, id, a, t).await;
        assert_error(&r, StatusCode::CONFLICT, "issue_closed");
        let r = app
            .post(
                &format!("/api/issues/{id}/replies"),
                t,
                json!({"body": "Are you still there?"}),
            )
            .await;
        assert_error(&r, StatusCode::CONFLICT, "issue_closed");
    }
    let after = issue(&app, id, &app.admin_token).await;
    assert_eq!(after["status"], "closed");
    assert_eq!(after["resolution"], before["resolution"]);
    assert_eq!(after["closed_by"], before["closed_by"]);
    assert_eq!(after["closed_at"], before["closed_at"]);
    assert_eq!(timeline(&app, id).await.len(), n, "nothing was recorded");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM outbox").await, 0);
    app.stop().await;
}

async fn reopen_rules(b: Backend) {
    let app = spawn_app(b).await;
    let (a, ta) = app.add_staff("Agent A", "agent").await;
    let (bb, tb) = app.add_staff("Agent B", "agent").await;
    let (_, tc) = app.add_staff("Agent C", "agent").await;
    let admin = admin_id(&app).await;

    // The closer of an unassigned issue reopens it: unassigned again.
    let i1 = sms_issue(&app, ALICE, "One").await;
    assert_eq!(act(&app, i1, "close", &ta).await.status, StatusCode::OK);
    let r = act(&app, i1, "reopen", &tc).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = act(&app, i1, "reopen", &ta).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_issue_shape(&r.body);
    assert_eq!(r.body["status"], "unassigned");
    assert_eq!(r.body["assignee"], Value::Null);
    assert_eq!(r.body["resolution"], Value::Null);
    assert_eq!(r.body["closed_by"], Value::Null);
    assert_eq!(r.body["closed_at"], Value::Null);
    assert_event(
        events(&app, i1).await.last().unwrap(),
        "reopened",
        Some((a, "Agent A")),
    );
    // Reopening an open issue is a conflict, not a change.
    let r = act(&app, i1, "reopen", &ta).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_error_shape(&r, &[]);

    // The previous assignee, when someone else (here the system) closed
    // it: back to them. The raw update stands in for an automatic close.
    let i2 = sms_issue(&app, BOB, "Two").await;
    assert_eq!(act(&app, i2, "take", &tb).await.status, StatusCode::OK);
    app.db
        .exec_at(
            "UPDATE issues SET status = 'closed', resolution = 'resolved', closed_by = NULL,
                    closed_at = $1 WHERE id = $2",
            Utc::now(),
            i2,
        )
        .await;
    let r = act(&app, i2, "reopen", &tc).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = act(&app, i2, "reopen", &tb).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "assigned");
    assert_eq!(r.body["assignee"], person(bb, "Agent B"));
    assert_event(
        events(&app, i2).await.last().unwrap(),
        "reopened",
        Some((bb, "Agent B")),
    );

    // An admin who neither closed it nor owned it: back to the assignee.
    assert_eq!(act(&app, i2, "close", &tb).await.status, StatusCode::OK);
    let r = act(&app, i2, "reopen", &app.admin_token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "assigned");
    assert_eq!(r.body["assignee"], person(bb, "Agent B"));
    assert_event(
        events(&app, i2).await.last().unwrap(),
        "reopened",
        Some((admin, "Admin")),
    );

    // The assignee has left since: reopened unassigned.
    assert_eq!(act(&app, i2, "close", &tb).await.status, StatusCode::OK);
    let r = patch(
        &app,
        &format!("/api/staff/{bb}"),
        &app.admin_token,
        json!({"active": false}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = act(&app, i2, "reopen", &app.admin_token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "unassigned");
    assert_eq!(r.body["assignee"], Value::Null);

    // The customer has written again since: their new issue is the open one.
    let i3 = sms_issue(&app, CAROL, "Three").await;
    assert_eq!(act(&app, i3, "close", &ta).await.status, StatusCode::OK);
    let i4 = sms_issue(&app, CAROL, "Me again").await;
    assert_ne!(i3, i4);
    assert_eq!(issue(&app, i4, &ta).await["previous_issue_id"], i3);
    for t in [&ta, &app.admin_token] {
        let r = act(&app, i3, "reopen", t).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        assert_error_shape(&r, &["issue_id"]);
        assert_eq!(r.code(), "customer_has_open_issue");
        assert_eq!(r.body["error"]["issue_id"], i4);
    }
    // Who may reopen is decided before the conflict is reported.
    let r = act(&app, i3, "reopen", &tc).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(issue_status(&app, i3).await, "closed");
    app.stop().await;
}

async fn every_transition_is_an_event_in_the_timeline(b: Backend) {
    let app = spawn_app(b).await;
    let (a, ta) = app.add_staff("Agent A", "agent").await;
    let (bb, tb) = app.add_staff("Agent B", "agent").await;
    let id = sms_issue(&app, ALICE, "Help").await;
    let steps: [(&str, &str, i64, &str); 6] = [
        ("take", "taken", a, "Agent A"),
        ("unassign", "unassigned", a, "Agent A"),
        ("assign", "assigned", a, "Agent A"),
        ("close", "closed", bb, "Agent B"),
        ("reopen", "reopened", bb, "Agent B"),
        ("resolve", "resolved", bb, "Agent B"),
    ];
    for (action, _, actor, _) in steps {
        let token = if actor == a { &ta } else { &tb };
        let r = if action == "assign" {
            assign(&app, id, bb, token).await
        } else {
            act(&app, id, action, token).await
        };
        assert_eq!(r.status, StatusCode::OK, "{action}: {}", r.text);
    }
    let all = timeline(&app, id).await;
    assert_eq!(all[0]["kind"], "customer");
    let ev: Vec<&Value> = all.iter().filter(|m| m["kind"] == "event").collect();
    assert_eq!(ev.len(), steps.len());
    let mut last = DateTime::<Utc>::MIN_UTC;
    for (e, (_, kind, actor, name)) in ev.iter().zip(steps) {
        assert_event(e, kind, Some((actor, name)));
        assert_eq!(e["issue_id"], id);
        assert_eq!(
            e["author"],
            json!({"type": "staff", "id": actor, "name": name})
        );
        let at = assert_utc(&e["created_at"], "created_at");
        assert!(at >= last, "events out of order");
        last = at;
    }
    let i = issue(&app, id, &app.admin_token).await;
    assert_eq!(i["resolution"], "resolved");
    assert_eq!(i["closed_by"], person(bb, "Agent B"));
    app.stop().await;
}

async fn ten_staff_take_it_at_once(b: Backend) {
    let app = spawn_app(b).await;
    let mut staff = Vec::new();
    for n in 0..10 {
        staff.push(app.add_staff(&format!("Racer {n}"), "agent").await);
    }
    let id = sms_issue(&app, ALICE, "Who will take me?").await;
    let takes = staff.iter().map(|(_, t)| act(&app, id, "take", t));
    let results = futures::future::join_all(takes).await;
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == StatusCode::OK)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for r in &results {
        if r.status != StatusCode::OK {
            assert_error(r, StatusCode::CONFLICT, "already_assigned");
        }
    }
    let winner = staff[winners[0]].0;
    let i = issue(&app, id, &app.admin_token).await;
    assert_eq!(i["status"], "assigned");
    assert_eq!(i["assignee"]["id"], winner);
    let ev = events(&app, id).await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["event"]["actor"]["id"], winner);
    app.stop().await;
}

// --------------------------------------------------------------- the list

async fn list_filters_and_counts(b: Backend) {
    let app = spawn_app(b).await;
    let (a, ta) = app.add_staff("Agent A", "agent").await;
    let admin = admin_id(&app).await;
    let t = app.admin_token.clone();

    let printer = sms_issue(&app, ALICE, "My Printer is on fire").await;
    let refund = sms_issue(&app, BOB, "Refund please").await;
    let password = sms_issue(&app, CAROL, "Lost my password").await;
    let old = sms_issue(&app, DAVE, "Where is my parcel").await;
    assert_eq!(assign(&app, refund, a, &t).await.status, StatusCode::OK);
    assert_eq!(act(&app, password, "take", &t).await.status, StatusCode::OK);
    assert_eq!(act(&app, old, "close", &t).await.status, StatusCode::OK);
    // A customer with a display name (SMS customers are named by number).
    let carol = issue(&app, password, &t).await["customer"]["id"]
        .as_i64()
        .unwrap();
    app.db
        .exec(&format!(
            "UPDATE customers SET name = 'Carol Zebrowski' WHERE id = {carol}"
        ))
        .await;

    // Without a status: open ones, newest activity first.
    let open = vec![password, refund, printer];
    assert_eq!(ids(&list(&app, "", &t).await), open);
    assert_eq!(ids(&list(&app, "?status=open", &t).await), open);
    assert_eq!(
        ids(&list(&app, "?status=unassigned", &t).await),
        vec![printer]
    );
    assert_eq!(
        ids(&list(&app, "?status=assigned", &t).await),
        vec![password, refund]
    );
    assert_eq!(ids(&list(&app, "?status=closed", &t).await), vec![old]);
    let all = json!({"unassigned": 1, "assigned": 2, "closed": 1});
    for q in ["", "?status=closed", "?status=assigned", "?limit=1"] {
        let l = list(&app, q, &t).await;
        assert_eq!(l["counts"], all, "{q}");
        assert_eq!(keys(&l), vec!["counts", "issues", "next_cursor"]);
    }

    // assignee=me | none | <id>.
    assert_eq!(ids(&list(&app, "?assignee=me", &ta).await), vec![refund]);
    assert_eq!(ids(&list(&app, "?assignee=me", &t).await), vec![password]);
    assert_eq!(
        ids(&list(&app, &format!("?assignee={a}"), &t).await),
        vec![refund]
    );
    assert_eq!(
        ids(&list(&app, &format!("?assignee={admin}"), &ta).await),
        vec![password]
    );
    let none = list(&app, "?assignee=none", &t).await;
    assert_eq!(ids(&none), vec![printer]);
    assert_eq!(
        none["counts"],
        json!({"unassigned": 1, "assigned": 0, "closed": 1})
    );
    assert_eq!(
        ids(&list(&app, "?assignee=none&status=closed", &t).await),
        vec![old]
    );
    let me = list(&app, "?assignee=me&status=closed", &ta).await;
    assert_eq!(ids(&me), Vec::<i64>::new());
    assert_eq!(
        me["counts"],
        json!({"unassigned": 0, "assigned": 1, "closed": 0})
    );

    // q: subject (any case), customer name, phone, #id.
    let q = list(&app, "?q=PRINTER", &t).await;
    assert_eq!(ids(&q), vec![printer]);
    assert_eq!(
        q["counts"],
        json!({"unassigned": 1, "assigned": 0, "closed": 0})
    );
    assert_eq!(ids(&list(&app, "?q=zebrow", &t).await), vec![password]);
    assert_eq!(
        ids(&list(&app, "?q=%2B15550100102", &t).await),
        vec![refund]
    );
    assert_eq!(ids(&list(&app, "?q=0100101", &t).await), vec![printer]);
    assert_eq!(
        ids(&list(&app, &format!("?q=%23{printer}"), &t).await),
        vec![printer]
    );
    let parcel = list(&app, "?q=parcel", &t).await;
    assert_eq!(ids(&parcel), Vec::<i64>::new(), "closed is not open");
    assert_eq!(
        parcel["counts"],
        json!({"unassigned": 0, "assigned": 0, "closed": 1})
    );
    assert_eq!(
        ids(&list(&app, "?q=parcel&status=closed", &t).await),
        vec![old]
    );
    assert_eq!(
        ids(&list(&app, "?q=no-such-thing", &t).await),
        Vec::<i64>::new()
    );
    // LIKE wildcards are matched literally.
    assert_eq!(ids(&list(&app, "?q=%25", &t).await), Vec::<i64>::new());
    assert_eq!(ids(&list(&app, "?q=_", &t).await), Vec::<i64>::new());

    // customer=<id>.
    let dave = issue(&app, old, &t).await["customer"]["id"]
        .as_i64()
        .unwrap();
    let newer = sms_issue(&app, DAVE, "Me again").await;
    let d = list(&app, &format!("?customer={dave}"), &t).await;
    assert_eq!(ids(&d), vec![newer]);
    assert_eq!(
        d["counts"],
        json!({"unassigned": 1, "assigned": 0, "closed": 1})
    );
    assert_eq!(
        ids(&list(&app, &format!("?customer={dave}&status=closed"), &t).await),
        vec![old]
    );
    assert_eq!(
        ids(&list(&app, "?customer=999999", &t).await),
        Vec::<i64>::new()
    );
    app.stop().await;
}

async fn list_items_have_the_shape_of_the_spec(b: Backend) {
    let app = spawn_app(b).await;
    accept_sms(&app).await;
    let (a, ta) = app.add_staff("Agent A", "agent").await;
    let t = app.admin_token.clone();

    let first = sms_issue(&app, ALICE, "Where   is\nmy order?").await;
    assert_eq!(act(&app, first, "close", &ta).await.status, StatusCode::OK);
    let second = sms_issue(&app, ALICE, "Thanks!").await;
    assert_eq!(act(&app, second, "take", &ta).await.status, StatusCode::OK);
    let long = "x".repeat(500);
    app.sms(&sid(), ALICE, &long).await;

    let l = list(&app, "?status=closed", &t).await;
    let closed = &l["issues"][0];
    assert_issue_shape(closed);
    assert_eq!(closed["id"], first);
    assert_eq!(closed["status"], "closed");
    assert_eq!(closed["subject"], "Where is my order?");
    assert_eq!(closed["channel"], "sms");
    assert_eq!(closed["customer"]["phone"], ALICE);
    assert_eq!(closed["customer"]["name"], ALICE);
    assert_eq!(closed["customer"]["email"], Value::Null);
    assert_eq!(closed["assignee"], Value::Null);
    assert_eq!(closed["closed_by"], person(a, "Agent A"));
    assert_eq!(closed["resolution"], "closed");
    assert_eq!(closed["previous_issue_id"], Value::Null);
    assert_eq!(closed["ack_only"], false);
    assert_eq!(closed["message_count"], 1);
    assert_eq!(closed["last_message_preview"], "Where is my order?");

    let l = list(&app, "", &t).await;
    assert_eq!(l["next_cursor"], Value::Null);
    let open = &l["issues"][0];
    assert_issue_shape(open);
    assert_eq!(open["id"], second);
    assert_eq!(open["status"], "assigned");
    assert_eq!(open["assignee"], person(a, "Agent A"));
    assert_eq!(open["previous_issue_id"], first);
    assert_eq!(
        open["ack_only"], true,
        "the issue opened with only 'Thanks!'"
    );
    assert_eq!(open["message_count"], 2);
    assert_eq!(open["unread"], true);
    assert_eq!(open["subject"], "Thanks!");
    let preview = open["last_message_preview"].as_str().unwrap();
    assert!(preview.starts_with("xxxx") && preview.chars().count() < 500);
    let created = assert_utc(&open["created_at"], "created_at");
    let last = assert_utc(&open["last_message_at"], "last_message_at");
    let updated = assert_utc(&open["updated_at"], "updated_at");
    assert!(created <= last && created <= updated);

    // The detail view is the list item.
    assert_eq!(&issue(&app, second, &t).await, open);
    assert_eq!(&issue(&app, first, &t).await, closed);

    // Events do not count as messages, nor make the preview; a reply does.
    let r = app
        .post(
            &format!("/api/issues/{second}/replies"),
            &ta,
            json!({"body": "Glad to help"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let i = issue(&app, second, &t).await;
    assert_eq!(i["message_count"], 3);
    assert_eq!(i["last_message_preview"], "Glad to help");
    assert!(assert_utc(&i["last_message_at"], "last_message_at") >= last);
    app.stop().await;
}

async fn the_list_pages_through_45_issues(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.admin_token.clone();
    for n in 0..45 {
        let r = app
            .sms(&sid(), &format!("+1555020{n:04}"), &format!("issue {n}"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    // Everything in one page, newest activity first, to compare against.
    let everything = list(&app, "?limit=100", &t).await;
    let all = ids(&everything);
    assert_eq!(all.len(), 45);
    let subjects: Vec<&str> = everything["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["subject"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..45).rev().map(|n| format!("issue {n}")).collect();
    assert_eq!(subjects, expected, "newest activity first");
    let stamps: Vec<DateTime<Utc>> = everything["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| assert_utc(&i["last_message_at"], "last_message_at"))
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] >= w[1]));

    for (limit, sizes) in [
        (None, vec![20, 20, 5]),
        (Some(15), vec![15, 15, 15]),
        (Some(45), vec![45]),
        (Some(44), vec![44, 1]),
    ] {
        let mut seen = Vec::new();
        let mut got_sizes = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = String::from("?");
            if let Some(l) = limit {
                q.push_str(&format!("limit={l}&"));
            }
            if let Some(c) = &cursor {
                q.push_str(&format!("cursor={c}"));
            }
            let page = list(&app, &q, &t).await;
            assert_eq!(
                page["counts"],
                json!({"unassigned": 45, "assigned": 0, "closed": 0})
            );
            let page_ids = ids(&page);
            got_sizes.push(page_ids.len());
            seen.extend(page_ids);
            match &page["next_cursor"] {
                Value::Null => break,
                Value::String(c) => cursor = Some(c.clone()),
                other => panic!("next_cursor is neither null nor a string: {other}"),
            }
            assert!(got_sizes.len() < 10, "the cursor does not advance");
        }
        assert_eq!(got_sizes, sizes, "limit {limit:?}");
        assert_eq!(seen, all, "limit {limit:?}: duplicates or gaps");
    }
    app.stop().await;
}

// --------------------------------------------------------------- timeline

async fn the_timeline_pages_backwards(b: Backend) {
    let app = spawn_app(b).await;
    accept_sms(&app).await;
    let (_, ta) = app.add_staff("Agent A", "agent").await;
    let id = sms_issue(&app, ALICE, "message 0").await;
    for n in 1..25 {
        if n % 5 == 0 {
            let r = app.sms(&sid(), ALICE, &format!("message {n}")).await;
            assert_eq!(r.status, StatusCode::OK);
        } else {
            let r = app
                .post(
                    &format!("/api/issues/{id}/comments"),
                    &ta,
                    json!({ "body": format!("message {n}") }),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        }
    }
    let everything = timeline(&app, id).await;
    let bodies: Vec<&str> = everything
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..25).map(|n| format!("message {n}")).collect();
    assert_eq!(bodies, expected, "oldest first");
    let all_ids: Vec<i64> = everything
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert!(all_ids.windows(2).all(|w| w[0] < w[1]));
    let stamps: Vec<DateTime<Utc>> = everything
        .iter()
        .map(|m| assert_utc(&m["created_at"], "created_at"))
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]));

    // The default page is the newest 20, still oldest first.
    let r = app.get(&format!("/api/issues/{id}/messages"), &ta).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(keys(&r.body), vec!["messages", "next_cursor"]);
    let page: Vec<i64> = r.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(page, all_ids[5..]);
    let cursor = r.body["next_cursor"].clone();
    assert!(!cursor.is_null());
    let cursor = match cursor {
        Value::String(s) => s,
        other => other.to_string(),
    };
    let r = app
        .get(&format!("/api/issues/{id}/messages?before={cursor}"), &ta)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let older: Vec<i64> = r.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(older, all_ids[..5]);
    assert_eq!(r.body["next_cursor"], Value::Null, "the start was reached");

    // Small pages walk back to the start without gaps or duplicates.
    let mut walked: Vec<i64> = Vec::new();
    let mut before: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &before {
            None => "limit=7".to_string(),
            Some(c) => format!("limit=7&before={c}"),
        };
        let r = app
            .get(&format!("/api/issues/{id}/messages?{q}"), &ta)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let mut page: Vec<i64> = r.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_i64().unwrap())
            .collect();
        pages += 1;
        page.extend(walked);
        walked = page;
        match &r.body["next_cursor"] {
            Value::Null => break,
            Value::String(s) => before = Some(s.clone()),
            other => before = Some(other.to_string()),
        }
        assert!(pages < 10, "the cursor does not advance");
    }
    assert_eq!(pages, 4);
    assert_eq!(walked, all_ids);
    app.stop().await;
}

async fn messages_have_the_shape_of_the_spec(b: Backend) {
    let app = spawn_app(b).await;
    accept_sms(&app).await;
    let (a, ta) = app.add_staff("Agent A", "agent").await;
    let id = sms_issue(&app, ALICE, "Hello there").await;
    let customer = issue(&app, id, &ta).await["customer"]["id"]
        .as_i64()
        .unwrap();
    assert_eq!(act(&app, id, "take", &ta).await.status, StatusCode::OK);
    let comment = app
        .post(
            &format!("/api/issues/{id}/comments"),
            &ta,
            json!({"body": "Internal note"}),
        )
        .await;
    assert_eq!(comment.status, StatusCode::CREATED, "{}", comment.text);
    let reply = app
        .post(
            &format!("/api/issues/{id}/replies"),
            &ta,
            json!({"body": "Hi!"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert_message_shape(&reply.body);
    assert_eq!(
        reply.body["delivery"],
        json!({"status": "queued", "error": null})
    );

    let m = timeline(&app, id).await;
    assert_eq!(m.len(), 4);
    for msg in &m {
        assert_message_shape(msg);
        assert_eq!(msg["issue_id"], id);
        assert_eq!(msg["edited_at"], Value::Null);
        assert_eq!(msg["attachments"], json!([]));
        assert_eq!(msg["refused_attachments"], json!([]));
    }
    let kinds: Vec<&str> = m.iter().map(|m| m["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["customer", "event", "comment", "reply"]);

    let inbound = &m[0];
    assert_eq!(inbound["channel"], "sms");
    assert_eq!(
        inbound["author"],
        json!({"type": "customer", "id": customer, "name": ALICE})
    );
    assert_eq!(inbound["body"], "Hello there");
    assert_eq!(inbound["threading_rule"], "new");

    let event = &m[1];
    assert_event(event, "taken", Some((a, "Agent A")));

    let note = &m[2];
    assert_eq!(note, &comment.body, "POST returns the message as listed");
    assert_eq!(
        note["author"],
        json!({"type": "staff", "id": a, "name": "Agent A"})
    );
    assert_eq!(note["body"], "Internal note");

    let out = &m[3];
    assert_eq!(out["id"], reply.body["id"]);
    assert_eq!(out["channel"], "sms");
    assert_eq!(
        out["author"],
        json!({"type": "staff", "id": a, "name": "Agent A"})
    );
    assert!(
        ["queued", "sending", "sent"].contains(&out["delivery"]["status"].as_str().unwrap()),
        "{out}"
    );
    app.stop().await;
}

// --------------------------------------------------------------- read markers

async fn read_markers_are_per_staff_member(b: Backend) {
    let app = spawn_app(b).await;
    let (_, ta) = app.add_staff("Agent A", "agent").await;
    let (_, tb) = app.add_staff("Agent B", "agent").await;
    let id = sms_issue(&app, ALICE, "Hello").await;
    let unread = |token: String| {
        let app = &app;
        async move {
            let from_list = list(app, "", &token).await["issues"][0]["unread"].clone();
            let from_detail = issue(app, id, &token).await["unread"].clone();
            assert_eq!(from_list, from_detail);
            from_list.as_bool().expect("unread is a boolean")
        }
    };
    assert!(unread(ta.clone()).await);
    assert!(unread(tb.clone()).await);

    let r = act(&app, id, "read", &ta).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(!unread(ta.clone()).await);
    assert!(unread(tb.clone()).await, "read for the caller only");
    // Reading twice is harmless.
    assert_eq!(act(&app, id, "read", &ta).await.status, StatusCode::OK);
    assert!(!unread(ta.clone()).await);

    // The customer writes again.
    assert_eq!(
        app.sms(&sid(), ALICE, "Hello?").await.status,
        StatusCode::OK
    );
    assert!(unread(ta.clone()).await);

    // One's own comment does not make an issue unread for oneself.
    assert_eq!(act(&app, id, "read", &ta).await.status, StatusCode::OK);
    assert_eq!(act(&app, id, "read", &tb).await.status, StatusCode::OK);
    let r = app
        .post(
            &format!("/api/issues/{id}/comments"),
            &ta,
            json!({"body": "Looking into it"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(!unread(ta.clone()).await);
    assert_eq!(
        app.sms(&sid(), ALICE, "Any news?").await.status,
        StatusCode::OK
    );
    assert!(unread(ta.clone()).await);
    assert!(unread(tb.clone()).await);
    app.stop().await;
}

// --------------------------------------------------------------- comments

async fn comments_are_edited_and_deleted_by_their_author_or_an_admin(b: Backend) {
    let app = spawn_app(b).await;
    accept_sms(&app).await;
    let (a, ta) = app.add_staff("Agent A", "agent").await;
    let (_, tb) = app.add_staff("Agent B", "agent").await;
    let id = sms_issue(&app, ALICE, "Hello").await;

    let r = app
        .post(
            &format!("/api/issues/{id}/comments"),
            &ta,
            json!({"body": "First draft"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_message_shape(&r.body);
    assert_eq!(r.body["kind"], "comment");
    assert_eq!(r.body["issue_id"], id);
    assert_eq!(r.body["body"], "First draft");
    assert_eq!(r.body["edited_at"], Value::Null);
    assert_eq!(r.body["delivery"], Value::Null);
    assert_eq!(
        r.body["author"],
        json!({"type": "staff", "id": a, "name": "Agent A"})
    );
    let c = r.body["id"].as_i64().unwrap();
    let path = format!("/api/messages/{c}");

    // The author edits: shown as edited.
    let r = patch(&app, &path, &ta, json!({"body": "Second draft"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_message_shape(&r.body);
    assert_eq!(r.body["body"], "Second draft");
    let edited = assert_utc(&r.body["edited_at"], "edited_at");
    assert!(edited >= assert_utc(&r.body["created_at"], "created_at"));
    let listed = timeline(&app, id).await;
    let listed = listed.iter().find(|m| m["id"] == c).unwrap();
    assert_eq!(listed["body"], "Second draft");
    assert_eq!(listed["edited_at"], r.body["edited_at"]);

    // Another agent may not; an admin may.
    let r = patch(&app, &path, &tb, json!({"body": "Vandalised"})).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = delete(&app, &path, &tb).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = patch(&app, &path, &app.admin_token, json!({"body": "Moderated"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["body"], "Moderated");
    assert_eq!(r.body["author"]["id"], a, "the author stays the author");
    let r = patch(&app, &path, &ta, json!({"body": ""})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);

    // Deleted: gone from the timeline, and then 404.
    let r = delete(&app, &path, &ta).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(r.text.is_empty());
    assert!(timeline(&app, id).await.iter().all(|m| m["id"] != c));
    let r = patch(&app, &path, &ta, json!({"body": "Back?"})).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = delete(&app, &path, &ta).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = delete(&app, &path, &app.admin_token).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");

    // An admin deletes someone else's comment.
    let r = app
        .post(
            &format!("/api/issues/{id}/comments"),
            &tb,
            json!({"body": "Oops"}),
        )
        .await;
    let c2 = r.body["id"].as_i64().unwrap();
    let r = delete(&app, &format!("/api/messages/{c2}"), &app.admin_token).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    // Customer messages, replies and events are not editable, by anyone.
    assert_eq!(act(&app, id, "take", &ta).await.status, StatusCode::OK);
    let reply = app
        .post(
            &format!("/api/issues/{id}/replies"),
            &ta,
            json!({"body": "Hi"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    let m = timeline(&app, id).await;
    let pick = |kind: &str| {
        m.iter()
            .find(|m| m["kind"] == kind)
            .and_then(|m| m["id"].as_i64())
            .unwrap()
    };
    for target in [pick("customer"), pick("reply"), pick("event")] {
        for t in [&ta, &app.admin_token] {
            let p = format!("/api/messages/{target}");
            let r = patch(&app, &p, t, json!({"body": "rewritten"})).await;
            assert_error(&r, StatusCode::CONFLICT, "not_editable");
            let r = delete(&app, &p, t).await;
            assert_error(&r, StatusCode::CONFLICT, "not_editable");
        }
    }
    // Delivery moves on in the background; the content must not.
    let content = |m: &[Value]| -> Vec<Value> {
        m.iter()
            .map(|m| json!([m["id"], m["kind"], m["body"], m["edited_at"]]))
            .collect()
    };
    let after = timeline(&app, id).await;
    assert_eq!(content(&after), content(&m), "nothing was changed");
    app.stop().await;
}

async fn the_authors_edit_window_is_five_hours(b: Backend) {
    let app = spawn_app(b).await;
    let (_, ta) = app.add_staff("Agent A", "agent").await;
    let id = sms_issue(&app, ALICE, "Hello").await;
    let mut comments = Vec::new();
    for body in ["recent", "old", "older"] {
        let r = app
            .post(
                &format!("/api/issues/{id}/comments"),
                &ta,
                json!({ "body": body }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        comments.push(r.body["id"].as_i64().unwrap());
    }
    let age = |hours: i64, minutes: i64, id: i64| {
        let app = &app;
        async move {
            app.db
                .exec_at(
                    "UPDATE messages SET created_at = $1 WHERE id = $2",
                    Utc::now()
                        - chrono::Duration::hours(hours)
                        - chrono::Duration::minutes(minutes),
                    id,
                )
                .await
        }
    };
    age(4, 50, comments[0]).await;
    age(5, 10, comments[1]).await;
    age(30, 0, comments[2]).await;

    // Within five hours: the author may.
    let p = format!("/api/messages/{}", comments[0]);
    let r = patch(&app, &p, &ta, json!({"body": "recent, edited"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Past five hours: the author may not; an admin still may.
    for c in &comments[1..] {
        let p = format!("/api/messages/{c}");
        let r = patch(&app, &p, &ta, json!({"body": "too late"})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert_error_shape(&r, &[]);
        let r = delete(&app, &p, &ta).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert_error_shape(&r, &[]);
    }
    let still: Vec<Value> = timeline(&app, id).await;
    assert!(still.iter().any(|m| m["body"] == "old"));
    let p = format!("/api/messages/{}", comments[1]);
    let r = patch(
        &app,
        &p,
        &app.admin_token,
        json!({"body": "old, moderated"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["edited_at"].is_string());
    let p = format!("/api/messages/{}", comments[2]);
    let r = delete(&app, &p, &app.admin_token).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(
        timeline(&app, id)
            .await
            .iter()
            .all(|m| m["id"] != comments[2])
    );
    app.stop().await;
}

// --------------------------------------------------------------- staff

async fn staff_administration(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.admin_token.clone();
    let admin = admin_id(&app).await;

    let r = app
        .post(
            "/api/staff",
            &t,
            json!({"email": "Jane.Doe@Example.TEST", "name": "Jane Doe", "role": "agent"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(keys(&r.body), vec!["staff", "token"]);
    let jane = r.body["staff"].clone();
    let jane_id = jane["id"].as_i64().unwrap();
    assert_eq!(jane["email"], "jane.doe@example.test");
    assert_eq!(jane["name"], "Jane Doe");
    assert_eq!(jane["role"], "agent");
    assert_eq!(jane["active"], true);
    let token = r.body["token"].as_str().unwrap().to_string();
    assert!(token.len() >= 20, "a token worth the name: {token}");
    // Shown once, stored only as a hash.
    let stored = app.db.strings("SELECT token_hash FROM api_tokens").await;
    assert!(stored.iter().all(|h| !h.contains(&token)));
    let me = app.get("/api/me", &token).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["id"], jane_id);
    assert_eq!(me.body["email"], "jane.doe@example.test");
    assert_eq!(me.body["role"], "agent");

    // Refusals.
    let r = app
        .post(
            "/api/staff",
            &t,
            json!({"email": "JANE.DOE@example.test", "name": "Jane Again", "role": "agent"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_error_shape(&r, &[]);
    for body in [
        json!({"email": "x@example.test", "name": "X", "role": "boss"}),
        json!({"email": "not an email", "name": "X", "role": "agent"}),
        json!({"email": "", "name": "X", "role": "agent"}),
        json!({"email": "x@example.test", "name": "  ", "role": "agent"}),
        json!({"email": "x@example.test", "role": "agent"}),
        json!({"name": "X", "role": "agent"}),
    ] {
        let r = app.post("/api/staff", &t, body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.text
        );
        assert_error_shape(&r, &[]);
    }

    // The list.
    let r = app.get("/api/staff", &t).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(keys(&r.body), vec!["staff"]);
    let list = r.body["staff"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(
        list.iter()
            .any(|s| s["id"] == admin && s["role"] == "admin")
    );
    assert!(list.iter().any(|s| s == &jane));
    for s in list {
        for k in ["id", "email", "name", "role", "active"] {
            assert!(s.get(k).is_some(), "{s}");
        }
        assert!(s.get("token").is_none() && s.get("token_hash").is_none());
    }

    // Name and role.
    let p = format!("/api/staff/{jane_id}");
    let r = patch(
        &app,
        &p,
        &t,
        json!({"name": "Jane Q. Doe", "role": "admin"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["name"], "Jane Q. Doe");
    assert_eq!(r.body["role"], "admin");
    assert_eq!(r.body["active"], true);
    let me = app.get("/api/me", &token).await;
    assert_eq!(me.body["name"], "Jane Q. Doe");
    assert_eq!(me.body["role"], "admin");
    assert_eq!(app.get("/api/staff", &token).await.status, StatusCode::OK);
    let r = patch(&app, &p, &t, json!({"role": "agent"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        app.get("/api/staff", &token).await.status,
        StatusCode::FORBIDDEN
    );
    for body in [
        json!({"role": "boss"}),
        json!({"name": ""}),
        json!({"active": "no"}),
    ] {
        let r = patch(&app, &p, &t, body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.text
        );
        assert_error_shape(&r, &[]);
    }

    // More tokens: old and new both work.
    let r = app
        .request(Method::POST, &format!("{p}/tokens"), Some(&t), None)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(keys(&r.body), vec!["token"]);
    let second = r.body["token"].as_str().unwrap().to_string();
    assert_ne!(second, token);
    assert_eq!(app.get("/api/me", &token).await.status, StatusCode::OK);
    assert_eq!(app.get("/api/me", &second).await.status, StatusCode::OK);

    // Deactivated: every token stops working; reactivated: they work again.
    let r = patch(&app, &p, &t, json!({"active": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["active"], false);
    for tok in [&token, &second] {
        let r = app.get("/api/me", tok).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let r = patch(&app, &p, &t, json!({"active": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.get("/api/me", &second).await.status, StatusCode::OK);

    // The last active admin cannot step down, either way.
    let me_path = format!("/api/staff/{admin}");
    for body in [json!({"active": false}), json!({"role": "agent"})] {
        let r = patch(&app, &me_path, &t, body.clone()).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{body}: {}", r.text);
        assert_error_shape(&r, &[]);
    }
    let me = app.get("/api/me", &t).await;
    assert_eq!(me.body["role"], "admin");
    assert_eq!(me.body["active"], true);
    // With a second admin, the first may go; then the second is the last.
    let r = patch(&app, &p, &t, json!({"role": "admin"})).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = patch(&app, &me_path, &token, json!({"active": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_error(
        &app.get("/api/me", &t).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let r = patch(&app, &p, &token, json!({"active": false})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(app.get("/api/me", &token).await.status, StatusCode::OK);
    app.stop().await;
}

// --------------------------------------------------------------- customers

async fn view_customer(b: Backend) {
    let app = spawn_app(b).await;
    let t = app.admin_token.clone();
    let first = sms_issue(&app, ALICE, "First").await;
    assert_eq!(act(&app, first, "resolve", &t).await.status, StatusCode::OK);
    let second = sms_issue(&app, ALICE, "Second").await;
    sms_issue(&app, BOB, "Someone else").await;
    let customer = issue(&app, first, &t).await["customer"]["id"]
        .as_i64()
        .unwrap();

    let (_, agent) = app.add_staff("Agent A", "agent").await;
    let r = app.get(&format!("/api/customers/{customer}"), &agent).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(keys(&r.body), vec!["contacts", "id", "issues", "name"]);
    assert_eq!(r.body["id"], customer);
    assert_eq!(r.body["name"], ALICE);
    assert_eq!(
        r.body["contacts"],
        json!([{"kind": "phone", "value": ALICE, "opted_out": false}])
    );
    let issues = r.body["issues"].as_array().unwrap();
    let got: Vec<i64> = issues.iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert_eq!(got, vec![second, first]);
    for i in issues {
        assert_issue_shape(i);
        assert_eq!(i["customer"]["id"], customer);
    }
    assert_eq!(issues[1]["resolution"], "resolved");
    assert_eq!(issues[0]["previous_issue_id"], first);
    assert_eq!(&issues[0], &issue(&app, second, &agent).await);

    for p in ["/api/customers/999999", "/api/customers/abc"] {
        let r = app.get(p, &t).await;
        assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    }
    app.stop().await;
}

// --------------------------------------------------------------- new ticket

async fn new_ticket_opens_an_assigned_issue_and_texts_the_customer(b: Backend) {
    let app = spawn_app(b).await;
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .and(basic_auth(ACCOUNT_SID, AUTH_TOKEN))
        .and(body_string_contains("To=%2B15550100177"))
        .and(body_string_contains("Body=It+shipped"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"sid": "SMnewticket01", "status": "queued"})),
        )
        .expect(1)
        .mount(&app.twilio)
        .await;
    let (a, ta) = app.add_staff("Agent A", "agent").await;
    let customers_before = app.db.count("SELECT COUNT(*) FROM customers").await;

    let r = app
        .post(
            "/api/issues",
            &ta,
            json!({"contact": "+15550100177", "subject": "Your order", "body": "It shipped"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_issue_shape(&r.body);
    let id = r.body["id"].as_i64().unwrap();
    assert_eq!(r.body["status"], "assigned");
    assert_eq!(r.body["assignee"], person(a, "Agent A"));
    assert_eq!(r.body["subject"], "Your order");
    assert_eq!(r.body["channel"], "sms");
    assert_eq!(r.body["customer"]["phone"], "+15550100177");
    assert_eq!(r.body["message_count"], 1);
    assert_eq!(r.body["unread"], false, "one's own message is read");
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM customers").await,
        customers_before + 1
    );

    let m = timeline(&app, id).await;
    let replies: Vec<&Value> = m.iter().filter(|m| m["kind"] == "reply").collect();
    assert_eq!(replies.len(), 1, "{m:?}");
    assert_message_shape(replies[0]);
    assert_eq!(replies[0]["body"], "It shipped");
    assert_eq!(replies[0]["channel"], "sms");
    assert_eq!(replies[0]["author"]["id"], a);
    // Queued with the issue, picked up by the outbox at once.
    assert!(
        ["queued", "sending", "sent"].contains(&replies[0]["delivery"]["status"].as_str().unwrap()),
        "{}",
        replies[0]
    );
    assert_eq!(
        app.db
            .count(&format!(
                "SELECT COUNT(*) FROM outbox WHERE message_id = {}",
                replies[0]["id"]
            ))
            .await,
        1
    );
    app.eventually(10, "the first message to reach Twilio", || async {
        timeline(&app, id)
            .await
            .iter()
            .any(|m| m["kind"] == "reply" && m["external_id"] == "SMnewticket01")
    })
    .await;
    app.twilio.verify().await;

    // The customer has an open issue now: reply there.
    for contact in ["+15550100177", "(555) 010-0177"] {
        let r = app
            .post(
                "/api/issues",
                &app.admin_token,
                json!({"contact": contact, "subject": "Again", "body": "Hello"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        assert_error_shape(&r, &["issue_id"]);
        assert_eq!(r.code(), "customer_has_open_issue");
        assert_eq!(r.body["error"]["issue_id"], id);
    }

    // By customer id, once the issue is closed.
    let customer = r.body["customer"]["id"].as_i64().unwrap();
    let r = app
        .post(
            "/api/issues",
            &ta,
            json!({"customer_id": customer, "subject": "Again", "body": "Hello"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.body["error"]["issue_id"], id);
    assert_eq!(act(&app, id, "close", &ta).await.status, StatusCode::OK);
    accept_sms(&app).await;
    let r = app
        .post(
            "/api/issues",
            &app.admin_token,
            json!({"customer_id": customer, "subject": "Follow-up", "body": "All good?"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let admin = admin_id(&app).await;
    assert_eq!(r.body["assignee"], person(admin, "Admin"));
    assert_eq!(r.body["customer"]["id"], customer);
    assert_eq!(r.body["subject"], "Follow-up");
    assert_ne!(r.body["id"], id);

    // Refusals, none of which leaves anything behind.
    let issues_before = app.db.count("SELECT COUNT(*) FROM issues").await;
    let customers_before = app.db.count("SELECT COUNT(*) FROM customers").await;
    for (body, status, code) in [
        (
            json!({"contact": "not a number", "body": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("invalid_contact"),
        ),
        (
            json!({"contact": "jane@", "body": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("invalid_contact"),
        ),
        (
            json!({"contact": "jane@example.test", "subject": "Hi", "body": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("channel_unavailable"),
        ),
        (
            json!({"customer_id": 999_999, "body": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
        (
            json!({"subject": "Nobody", "body": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
        (
            json!({"contact": "+15550100188", "body": "  "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
        (
            json!({"contact": "+15550100188"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
    ] {
        let r = app.post("/api/issues", &ta, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert_error_shape(&r, &[]);
        if let Some(code) = code {
            assert_eq!(r.code(), code, "{body}");
        }
    }
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM issues").await,
        issues_before
    );
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM customers").await,
        customers_before
    );
    app.stop().await;
}

// --------------------------------------------------------------- health

async fn health_readiness_and_metrics(b: Backend) {
    let app = spawn_app(b).await;
    let r = send(&app, Method::GET, "/healthz", None, None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let r = send(&app, Method::GET, "/readyz", None, None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["ready"], true, "{}", r.text);
    assert_eq!(r.body["checks"]["database"]["ok"], true, "{}", r.text);
    assert!(r.body["checks"].is_object());

    // Route templates, not raw paths, label the latency histogram.
    let issue = sms_issue(&app, ALICE, "Hi").await;
    assert_eq!(
        app.get(&format!("/api/issues/{issue}"), &app.admin_token)
            .await
            .status,
        StatusCode::OK
    );
    let r = send(&app, Method::GET, "/metrics", None, None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let ct = r.headers["content-type"].to_str().unwrap();
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert!(
        r.text.contains("switchboard_http_request_duration_seconds"),
        "{}",
        r.text
    );
    assert!(r.text.contains("route=\"/api/issues/{id}\""), "{}", r.text);
    assert!(
        !r.text.contains(&format!("route=\"/api/issues/{issue}\"")),
        "raw paths would explode the label set"
    );
    app.stop().await;
}

both_backends!(
    requests_without_a_valid_token_get_401,
    agents_get_403_on_admin_routes,
    errors_are_json_with_a_code_and_a_message,
    take_it,
    assign_it,
    unassign,
    close_and_resolve,
    closed_issues_refuse_every_action_but_reopen,
    reopen_rules,
    every_transition_is_an_event_in_the_timeline,
    ten_staff_take_it_at_once,
    list_filters_and_counts,
    list_items_have_the_shape_of_the_spec,
    the_list_pages_through_45_issues,
    the_timeline_pages_backwards,
    messages_have_the_shape_of_the_spec,
    read_markers_are_per_staff_member,
    comments_are_edited_and_deleted_by_their_author_or_an_admin,
    the_authors_edit_window_is_five_hours,
    staff_administration,
    view_customer,
    new_ticket_opens_an_assigned_issue_and_texts_the_customer,
    health_readiness_and_metrics,
);
