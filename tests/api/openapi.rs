//! The OpenAPI document names every route, and every route it names exists;
//! it describes the request bodies and the SPEC §4.1 shapes.
//!
//! utoipa-axum registers each route from its handler's `#[utoipa::path]`, so
//! a served route cannot go undocumented; these tests keep the other half
//! honest (documented paths answer, bodies and schemas are there and every
//! `$ref` resolves).

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::Backend;
use crate::issues_api::{ISSUE_FIELDS, MESSAGE_FIELDS};
use crate::spawn::spawn_app;

#[tokio::test]
async fn every_documented_route_is_served() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc = app
        .request(Method::GET, "/api/openapi.json", None, None)
        .await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.body["openapi"], "3.1.0");
    assert_eq!(
        doc.body,
        generated(),
        "the served document is the generated one"
    );
    let paths = doc.body["paths"].as_object().unwrap();
    for spec_path in [
        "/api/issues",
        "/api/issues/{id}",
        "/api/issues/{id}/messages",
        "/api/issues/{id}/take",
        "/api/issues/{id}/assign",
        "/api/issues/{id}/unassign",
        "/api/issues/{id}/close",
        "/api/issues/{id}/resolve",
        "/api/issues/{id}/reopen",
        "/api/issues/{id}/replies",
        "/api/issues/{id}/comments",
        "/api/issues/{id}/read",
        "/api/issues/{id}/watch",
        "/api/messages/{id}",
        "/api/issues/{id}/attachments",
        "/api/attachments/{id}",
        "/api/customers/{id}",
        "/api/customers/{id}/merge",
        "/api/broadcasts",
        "/api/broadcasts/{id}",
        "/api/openapi.json",
        "/api/notifications",
        "/api/notifications/read",
        "/api/me",
        "/api/me/preferences",
        "/api/staff",
        "/api/staff/{id}",
        "/api/staff/{id}/tokens",
        "/api/stream",
        "/api/rejected",
        "/healthz",
        "/readyz",
        "/metrics",
        "/webhooks/twilio/sms",
        "/webhooks/twilio/status",
    ] {
        assert!(
            paths.contains_key(spec_path),
            "{spec_path} is missing from the document"
        );
    }
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path.replace("{id}", "1");
            if concrete == "/api/stream" {
                continue; // a stream never ends; covered elsewhere
            }
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = app
                .request(m, &concrete, Some(&app.admin_token), None)
                .await;
            let fallback = r.status == StatusCode::METHOD_NOT_ALLOWED
                || (r.status == StatusCode::NOT_FOUND && r.text.contains("route not found"));
            assert!(
                !fallback,
                "{method} {path} is documented but not served: {} {}",
                r.status, r.text
            );
        }
    }
    app.stop().await;
}

/// The document as the crate generates it, as JSON.
fn generated() -> Value {
    serde_json::to_value(switchboard::http::openapi::document()).unwrap()
}

/// Follows a `$ref` into `components`, or returns the schema itself.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected $ref {r}"));
            let target = &doc["components"]["schemas"][name];
            assert!(target.is_object(), "$ref {r} names no schema");
            target
        }
        None => schema,
    }
}

fn property_names(schema: &Value) -> Vec<&str> {
    schema["properties"]
        .as_object()
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// Every `$ref` anywhere in the document.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r);
            }
            m.values().for_each(|v| refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn document_describes_bodies_security_and_shapes() {
    let doc = generated();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Switchboard");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(bearer["type"], "http");
    assert_eq!(bearer["scheme"], "bearer");
    assert_eq!(doc["security"], serde_json::json!([{ "bearer": [] }]));

    // Every reference resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        resolve(&doc, &serde_json::json!({ "$ref": r }));
    }

    // The routes that take JSON describe it, with SPEC field names.
    for (method, path, fields) in [
        (
            "post",
            "/api/issues",
            &["customer_id", "contact", "subject", "body"][..],
        ),
        ("post", "/api/issues/{id}/assign", &["assignee_id"]),
        ("post", "/api/issues/{id}/replies", &["body", "channel"]),
        ("post", "/api/issues/{id}/comments", &["body"]),
        ("patch", "/api/messages/{id}", &["body"]),
        ("post", "/api/customers/{id}/merge", &["from"]),
        (
            "post",
            "/api/broadcasts",
            &["body", "subject", "customer_ids"],
        ),
        ("post", "/api/notifications/read", &["ids", "all"]),
        ("put", "/api/me/preferences", &[]),
        ("post", "/api/staff", &["email", "name", "role"]),
        ("patch", "/api/staff/{id}", &["active", "role", "name"]),
    ] {
        let op = &doc["paths"][path][method];
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        assert!(
            schema.is_object(),
            "{method} {path} documents no JSON request body: {op}"
        );
        let schema = resolve(&doc, schema);
        let names = property_names(schema);
        for f in fields {
            assert!(
                names.contains(f),
                "{method} {path} body lacks `{f}`: {schema}"
            );
        }
    }
    // The preferences change is a map of event → {in_app, email}.
    let prefs = resolve(
        &doc,
        &doc["paths"]["/api/me/preferences"]["put"]["requestBody"]["content"]["application/json"]["schema"],
    );
    let cell = resolve(&doc, &prefs["additionalProperties"]);
    assert_eq!(property_names(cell), ["email", "in_app"]);

    // Component schemas with SPEC §4 / §4.1 field names.
    let schemas = &doc["components"]["schemas"];
    let error = &schemas["Error"];
    assert_eq!(property_names(error), ["error"]);
    let detail = resolve(&doc, &error["properties"]["error"]);
    for f in ["code", "message"] {
        assert!(property_names(detail).contains(&f), "Error.error lacks {f}");
    }
    for (name, fields) in [
        ("Issue", ISSUE_FIELDS),
        ("Message", MESSAGE_FIELDS),
        ("Customer", &["id", "name", "contacts", "issues"]),
        ("CustomerRef", &["id", "name", "phone", "email"]),
        ("PersonRef", &["id", "name"]),
        ("Attachment", &["id", "filename", "content_type", "size"]),
        ("Rejected", &["id", "kind", "reason", "received_at"]),
    ] {
        let schema = &schemas[name];
        assert!(schema.is_object(), "no `{name}` schema");
        let names = property_names(schema);
        for f in fields {
            assert!(names.contains(f), "`{name}` lacks `{f}`: {names:?}");
        }
    }
    // Wire enums carry their exact spellings.
    assert_eq!(
        schemas["IssueStatus"]["enum"],
        serde_json::json!(["unassigned", "assigned", "closed"])
    );

    // Success shapes of a few routes (SPEC §4.1 wrappers).
    let ok_schema = |method: &str, path: &str, status: &str| {
        let s = &doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"];
        assert!(s.is_object(), "{method} {path} {status} has no JSON schema");
        property_names(resolve(&doc, s))
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ok_schema("get", "/api/issues", "200"),
        ["counts", "issues", "next_cursor"]
    );
    assert_eq!(
        ok_schema("get", "/api/issues/{id}/messages", "200"),
        ["messages", "next_cursor"]
    );
    assert_eq!(ok_schema("post", "/api/staff", "201"), ["staff", "token"]);
    assert_eq!(
        ok_schema("post", "/api/staff/{id}/tokens", "201"),
        ["token"]
    );
    assert_eq!(ok_schema("get", "/readyz", "200"), ["checks", "ready"]);
    assert!(ok_schema("post", "/api/issues/{id}/replies", "202").contains(&"delivery".to_string()));

    // Authenticated routes inherit the bearer requirement and document 401;
    // the public ones clear it.
    let mut ids = std::collections::BTreeSet::new();
    for ops in doc["paths"].as_object().unwrap().values() {
        for op in ops.as_object().unwrap().values() {
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id), "operationId {id} is used twice");
        }
    }

    let public = [
        "/api/openapi.json",
        "/webhooks/twilio/sms",
        "/webhooks/twilio/status",
        "/healthz",
        "/readyz",
        "/metrics",
    ];
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if public.contains(&path.as_str()) {
                assert_eq!(op["security"], serde_json::json!([{}]), "{method} {path}");
            } else {
                assert!(
                    op.get("security").is_none(),
                    "{method} {path} overrides security"
                );
                assert!(
                    op["responses"]["401"].is_object(),
                    "{method} {path} does not document 401"
                );
            }
            let documented_success = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.starts_with('2'));
            assert!(
                documented_success,
                "{method} {path} has no success response"
            );
        }
    }
}
