//! `GET /api/openapi.json`: an OpenAPI 3.1 description of the API.
//!
//! STYLE.md suggests utoipa; annotating every handler is a refactor of the
//! whole http layer that I have not done yet. Until then the document is
//! built here from one route table, and a test requests every route in it
//! against the real router, so a route can't be documented without
//! existing. Schemas are deliberately loose (`additionalProperties`
//! allowed): SPEC §4.1 is the authority on field names.

use axum::Json;
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::AppState;

/// (method, path, summary, admin only, request body schema, success status)
pub type Route = (
    &'static str,
    &'static str,
    &'static str,
    bool,
    Option<&'static str>,
    u16,
);

#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    ("get", "/api/issues", "List issues (filters: status, assignee, q, customer, limit, cursor)", false, None, 200),
    ("post", "/api/issues", "Open an issue to a customer (New Ticket)", false, Some("NewIssue"), 201),
    ("get", "/api/issues/{id}", "One issue", false, None, 200),
    ("get", "/api/issues/{id}/messages", "Timeline, oldest first (limit, before)", false, None, 200),
    ("post", "/api/issues/{id}/take", "Take It", false, None, 200),
    ("post", "/api/issues/{id}/assign", "Assign It", false, Some("Assign"), 200),
    ("post", "/api/issues/{id}/unassign", "Unassign", false, None, 200),
    ("post", "/api/issues/{id}/close", "Mark as Closed", false, None, 200),
    ("post", "/api/issues/{id}/resolve", "Resolve", false, None, 200),
    ("post", "/api/issues/{id}/reopen", "Reopen", false, None, 200),
    ("post", "/api/issues/{id}/replies", "Reply to the customer", false, Some("Reply"), 202),
    ("post", "/api/issues/{id}/comments", "Private comment", false, Some("Body"), 201),
    ("post", "/api/issues/{id}/read", "Mark read for the caller", false, None, 200),
    ("post", "/api/issues/{id}/watch", "Watch an issue", false, None, 200),
    ("delete", "/api/issues/{id}/watch", "Stop watching an issue", false, None, 200),
    ("get", "/api/issues/{id}/attachments", "Files shared in an issue", false, None, 200),
    ("patch", "/api/messages/{id}", "Edit a private comment", false, Some("Body"), 200),
    ("delete", "/api/messages/{id}", "Delete a private comment", false, None, 204),
    ("get", "/api/attachments/{id}", "Download an attachment", false, None, 200),
    ("get", "/api/customers/{id}", "View Customer", false, None, 200),
    ("post", "/api/customers/{id}/merge", "Merge another customer into this one", true, Some("Merge"), 200),
    ("post", "/api/broadcasts", "Send one announcement to many customers", true, Some("Broadcast"), 202),
    ("get", "/api/broadcasts/{id}", "A broadcast's progress and per-recipient outcome", true, None, 200),
    ("get", "/api/notifications", "In-app notifications (unread, limit, cursor)", false, None, 200),
    ("post", "/api/notifications/read", "Mark notifications read", false, Some("ReadNotifications"), 200),
    ("get", "/api/me", "The caller", false, None, 200),
    ("get", "/api/me/preferences", "The caller's notification matrix", false, None, 200),
    ("put", "/api/me/preferences", "Change notification preferences", false, Some("Preferences"), 200),
    ("get", "/api/staff", "List staff", true, None, 200),
    ("post", "/api/staff", "Add a staff member (returns a token once)", true, Some("NewStaff"), 201),
    ("patch", "/api/staff/{id}", "Change a staff member", true, Some("StaffPatch"), 200),
    ("post", "/api/staff/{id}/tokens", "New API token (returned once)", true, None, 201),
    ("get", "/api/stream", "Server-Sent Events (Last-Event-ID resumes)", false, None, 200),
    ("get", "/api/rejected", "Rejected inbound log", true, None, 200),
    ("get", "/api/openapi.json", "This document", false, None, 200),
    ("post", "/webhooks/twilio/sms", "Twilio inbound SMS webhook (X-Twilio-Signature)", false, None, 200),
    ("post", "/webhooks/twilio/status", "Twilio delivery status callback", false, None, 200),
    ("get", "/healthz", "Liveness", false, None, 200),
    ("get", "/readyz", "Readiness", false, None, 200),
    ("get", "/metrics", "Prometheus metrics", false, None, 200),
];

fn schemas() -> Value {
    let obj = |props: Value, required: &[&str]| json!({ "type": "object", "properties": props, "required": required });
    json!({
        "Error": obj(json!({ "error": obj(json!({ "code": {"type": "string"}, "message": {"type": "string"} }), &["code", "message"]) }), &["error"]),
        "NewIssue": obj(json!({ "customer_id": {"type": "integer"}, "contact": {"type": "string"}, "subject": {"type": "string"}, "body": {"type": "string"} }), &["body"]),
        "Assign": obj(json!({ "assignee_id": {"type": "integer"} }), &["assignee_id"]),
        "Reply": obj(json!({ "body": {"type": "string"}, "channel": {"type": "string", "enum": ["sms", "email"]} }), &["body"]),
        "Body": obj(json!({ "body": {"type": "string"} }), &["body"]),
        "Broadcast": obj(json!({ "body": {"type": "string"}, "subject": {"type": "string"}, "customer_ids": { "oneOf": [ {"type": "array", "items": {"type": "integer"}}, {"const": "all"} ] } }), &["body", "customer_ids"]),
        "Merge": obj(json!({ "from": {"type": "integer"} }), &["from"]),
        "ReadNotifications": obj(json!({ "ids": {"type": "array", "items": {"type": "integer"}}, "all": {"type": "boolean"} }), &[]),
        "Preferences": { "type": "object", "additionalProperties": obj(json!({ "in_app": {"type": "boolean"}, "email": {"type": "boolean"} }), &[]) },
        "NewStaff": obj(json!({ "email": {"type": "string"}, "name": {"type": "string"}, "role": {"type": "string", "enum": ["admin", "agent"]} }), &["email", "name"]),
        "StaffPatch": obj(json!({ "active": {"type": "boolean"}, "role": {"type": "string", "enum": ["admin", "agent"]}, "name": {"type": "string"} }), &[]),
    })
}

/// The whole document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for (method, path, summary, admin, body, status) in ROUTES {
        let mut op = json!({
            "summary": summary,
            "responses": {
                status.to_string(): { "description": "success" },
                "default": { "description": "error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
            }
        });
        if path.contains("{id}") {
            op["parameters"] = json!([{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }]);
        }
        if let Some(schema) = body {
            op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } });
        }
        if path.starts_with("/api/") && *path != "/api/openapi.json" {
            op["security"] = json!([{ "bearer": [] }]);
        }
        if *admin {
            op["description"] = json!("Admins only; agents get 403 `forbidden`.");
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Switchboard", "version": env!("CARGO_PKG_VERSION"), "description": "Customer SMS and email in, support issues out." },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } }
        }
    })
}

pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/api/openapi.json", get(|| async { Json(document()) }))
}
