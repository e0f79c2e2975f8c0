//! Customer merge (SPEC §3.5): one customer across SMS and email.

use reqwest::StatusCode;
use serde_json::json;

use crate::email_out::app_with_smtp;
use crate::helpers::Backend;
use crate::smtp_sink::SmtpSink;

async fn merging_makes_one_customer_across_channels(b: Backend) {
    let sink = SmtpSink::start();
    let app = app_with_smtp(b, &sink).await;
    let admin = app.admin_token.clone();
    let sms_issue = app
        .sms_issue("SMm001", "+15550100161", "Text from Jane")
        .await;
    let phone_customer = app
        .get(&format!("/api/issues/{sms_issue}"), &admin)
        .await
        .body["customer"]["id"]
        .as_i64()
        .unwrap();
    let r = app
        .post(
            "/api/issues",
            &admin,
            json!({"contact": "jane@example.com", "subject": "Hi Jane", "body": "Following up"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let email_issue = r.body["id"].as_i64().unwrap();
    let email_customer = r.body["customer"]["id"].as_i64().unwrap();
    assert_ne!(phone_customer, email_customer);

    // Agents may not merge.
    let (_, agent) = app.add_staff("Agent M", "agent").await;
    let r = app
        .post(
            &format!("/api/customers/{phone_customer}/merge"),
            &agent,
            json!({"from": email_customer}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Both have an open issue: refused, nothing moves.
    let r = app
        .post(
            &format!("/api/customers/{phone_customer}/merge"),
            &admin,
            json!({"from": email_customer}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "both_have_open_issues");
    let view = app
        .get(&format!("/api/customers/{email_customer}"), &admin)
        .await;
    assert_eq!(view.body["contacts"].as_array().unwrap().len(), 1);

    // Close one, then merge.
    assert_eq!(
        app.post(
            &format!("/api/issues/{email_issue}/close"),
            &admin,
            json!({})
        )
        .await
        .status,
        StatusCode::OK
    );
    let r = app
        .post(
            &format!("/api/customers/{phone_customer}/merge"),
            &admin,
            json!({"from": email_customer}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let contacts: Vec<String> = r.body["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(contacts, vec!["+15550100161", "jane@example.com"]);
    let issues: Vec<i64> = r.body["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert!(issues.contains(&sms_issue) && issues.contains(&email_issue));
    // The merged-away id shows the merged customer.
    let old = app
        .get(&format!("/api/customers/{email_customer}"), &admin)
        .await;
    assert_eq!(old.body["id"], phone_customer);
    // The merge is on the open issue's timeline.
    let msgs = app
        .get(&format!("/api/issues/{sms_issue}/messages"), &admin)
        .await;
    assert!(
        msgs.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["event"]["type"] == "merged")
    );
    // Both contacts now reach the same customer and the same open issue.
    assert_eq!(
        app.sms("SMm002", "+15550100161", "Me again").await.status,
        StatusCode::OK
    );
    let r = app
        .post(
            "/api/issues",
            &admin,
            json!({"contact": "JANE@example.com", "subject": "x", "body": "y"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "customer_has_open_issue");
    assert_eq!(r.body["error"]["issue_id"], sms_issue);
    // Merging into itself or an unknown customer.
    let r = app
        .post(
            &format!("/api/customers/{phone_customer}/merge"),
            &admin,
            json!({"from": phone_customer}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .post(
            &format!("/api/customers/{phone_customer}/merge"),
            &admin,
            json!({"from": 99999}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

both_backends!(merging_makes_one_customer_across_channels);
