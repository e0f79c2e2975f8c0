//! End to end over HTTP: Twilio webhooks in, replies out through a local
//! Twilio stand-in, delivery callbacks, opt-out. Each test runs on SQLite
//! and on PostgreSQL.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::{basic_auth, body_string_contains, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::Backend;
use crate::spawn::{ACCOUNT_SID, AUTH_TOKEN, OUR_NUMBER, PUBLIC_URL, TestApp, spawn_app};

const ALICE: &str = "+15550100101";
const BOB: &str = "+15550100102";

fn messages_path() -> String {
    format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
}

async fn timeline(app: &TestApp, issue: i64) -> Vec<Value> {
    let r = app
        .get(
            &format!("/api/issues/{issue}/messages?limit=100"),
            &app.admin_token,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["messages"].as_array().expect("messages").clone()
}

async fn inbound_is_acknowledged_with_twiml_and_threaded(b: Backend) {
    let app = spawn_app(b).await;
    let r = app.sms("SM0001", ALICE, "My printer is on fire").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.headers["content-type"], "text/xml");
    assert_eq!(
        r.text,
        r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#
    );

    // Same customer again: same issue, by rule `customer`.
    assert_eq!(
        app.sms("SM0002", ALICE, "Still burning").await.status,
        StatusCode::OK
    );
    // A Twilio retry of the first message: acknowledged, not stored twice.
    let retry = app.sms("SM0001", ALICE, "My printer is on fire").await;
    assert_eq!(retry.status, StatusCode::OK);
    assert!(retry.text.contains("<Response></Response>"));
    // Someone else: a new issue.
    assert_eq!(
        app.sms("SM0003", BOB, "Hello?").await.status,
        StatusCode::OK
    );

    let list = app.get("/api/issues", &app.admin_token).await;
    assert_eq!(list.status, StatusCode::OK);
    let issues = list.body["issues"].as_array().unwrap();
    assert_eq!(issues.len(), 2);
    assert_eq!(
        list.body["counts"],
        json!({"unassigned": 2, "assigned": 0, "closed": 0})
    );
    let alice = issues
        .iter()
        .find(|i| i["customer"]["phone"] == ALICE)
        .expect("alice's issue");
    assert_eq!(alice["subject"], "My printer is on fire");
    assert_eq!(alice["channel"], "sms");
    assert_eq!(alice["status"], "unassigned");
    assert_eq!(alice["message_count"], 2);
    assert_eq!(alice["last_message_preview"], "Still burning");
    assert_eq!(alice["unread"], true);
    // Newest activity first.
    assert_eq!(issues[0]["customer"]["phone"], BOB);

    let msgs = timeline(&app, alice["id"].as_i64().unwrap()).await;
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["external_id"], "SM0001");
    assert_eq!(msgs[0]["threading_rule"], "new");
    assert_eq!(msgs[1]["threading_rule"], "customer");
    assert_eq!(msgs[0]["kind"], "customer");
    assert_eq!(msgs[0]["author"]["type"], "customer");
    assert_eq!(msgs[0]["delivery"], Value::Null);
    app.stop().await;
}

async fn bad_signatures_are_refused_counted_and_logged(b: Backend) {
    let app = spawn_app(b).await;
    let params = [
        ("MessageSid", "SM0100"),
        ("AccountSid", ACCOUNT_SID),
        ("From", ALICE),
        ("To", OUR_NUMBER),
        ("Body", "hi"),
    ];
    // No signature.
    let r = app
        .webhook_with_signature("/webhooks/twilio/sms", &params, None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Signed for another URL (a wrong public_url behind a proxy).
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let wrong_url = switchboard::channels::sms::twilio::compute_signature(
        AUTH_TOKEN,
        &format!("http://{}/webhooks/twilio/sms", app.addr),
        &owned,
    );
    let r = app
        .webhook_with_signature("/webhooks/twilio/sms", &params, Some(&wrong_url))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Signed with another token.
    let wrong_token = switchboard::channels::sms::twilio::compute_signature(
        "not-the-token",
        &format!("{PUBLIC_URL}/webhooks/twilio/sms"),
        &owned,
    );
    let r = app
        .webhook_with_signature("/webhooks/twilio/sms", &params, Some(&wrong_token))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A tampered body under a valid signature.
    let good = switchboard::channels::sms::twilio::compute_signature(
        AUTH_TOKEN,
        &format!("{PUBLIC_URL}/webhooks/twilio/sms"),
        &owned,
    );
    let tampered = [
        ("MessageSid", "SM0100"),
        ("AccountSid", ACCOUNT_SID),
        ("From", ALICE),
        ("To", OUR_NUMBER),
        ("Body", "hi!"),
    ];
    let r = app
        .webhook_with_signature("/webhooks/twilio/sms", &tampered, Some(&good))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Correctly signed, but for another Twilio account.
    let foreign = app
        .signed_webhook(
            "/webhooks/twilio/sms",
            &[
                ("MessageSid", "SM0101"),
                ("AccountSid", "ACffffffffffffffffffffffffffffffff"),
                ("From", ALICE),
                ("Body", "hi"),
            ],
        )
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);

    // Nothing was stored.
    let list = app.get("/api/issues?status=open", &app.admin_token).await;
    assert_eq!(list.body["issues"].as_array().unwrap().len(), 0);
    // Each rejection is in the log, with its reason and without the body.
    let rejected = app.get("/api/rejected", &app.admin_token).await;
    assert_eq!(rejected.status, StatusCode::OK);
    let rows = rejected.body["rejected"].as_array().unwrap();
    let reasons: Vec<&str> = rows.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    // Three bad signatures from one client address: one row, counted
    // three times (issue 11 item 7).
    let bad: Vec<&Value> = rows
        .iter()
        .filter(|r| r["reason"] == "bad_signature")
        .collect();
    assert_eq!(bad.len(), 1, "{reasons:?}");
    assert_eq!(bad[0]["repeats"], 3, "{reasons:?}");
    assert!(reasons.contains(&"missing_signature"));
    assert!(reasons.contains(&"wrong_account"));
    assert!(
        rows.iter()
            .all(|r| r["kind"] == "webhook" && r["received_at"].is_string() && r["id"].is_i64())
    );
    assert!(
        !rejected.text.contains("hi!"),
        "the rejected log must not keep bodies"
    );
    // And counted in /metrics.
    let m = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("switchboard_rejected_total{kind=\"webhook\",reason=\"bad_signature\"}"),
        "{m}"
    );
    // Agents may not read the rejected log.
    let (_, agent) = app.add_staff("Agent Smith", "agent").await;
    assert_eq!(
        app.get("/api/rejected", &agent).await.status,
        StatusCode::FORBIDDEN
    );
    app.stop().await;
}

async fn malformed_webhooks_get_clear_errors(b: Backend) {
    let app = spawn_app(b).await;
    let no_sid = app
        .signed_webhook(
            "/webhooks/twilio/sms",
            &[("AccountSid", ACCOUNT_SID), ("From", ALICE), ("Body", "x")],
        )
        .await;
    assert_eq!(no_sid.status, StatusCode::BAD_REQUEST);
    let no_from = app
        .signed_webhook(
            "/webhooks/twilio/sms",
            &[
                ("MessageSid", "SM0200"),
                ("AccountSid", ACCOUNT_SID),
                ("Body", "x"),
            ],
        )
        .await;
    assert_eq!(no_from.status, StatusCode::BAD_REQUEST);
    let huge = "x".repeat(70 * 1024);
    let big = app
        .signed_webhook(
            "/webhooks/twilio/sms",
            &[
                ("MessageSid", "SM0201"),
                ("AccountSid", ACCOUNT_SID),
                ("From", ALICE),
                ("Body", &huge),
            ],
        )
        .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        app.get("/api/issues", &app.admin_token).await.body["issues"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    app.stop().await;
}

async fn replies_go_out_and_retry_on_429(b: Backend) {
    let app = spawn_app(b).await;
    let issue = app.sms_issue("SM0300", ALICE, "Where is my order?").await;
    // First attempt: rate limited; second: accepted.
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "code": 20429, "message": "Too Many Requests", "status": 429
        })))
        .up_to_n_times(1)
        .expect(1)
        .mount(&app.twilio)
        .await;
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .and(basic_auth(ACCOUNT_SID, AUTH_TOKEN))
        .and(body_string_contains("To=%2B15550100101"))
        .and(body_string_contains("From=%2B15550100"))
        .and(body_string_contains("Body=On+its+way"))
        .and(body_string_contains(
            "StatusCallback=https%3A%2F%2Fsupport.example.test%2Fwebhooks%2Ftwilio%2Fstatus",
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "sid": "SMreply0001", "status": "queued"
        })))
        .expect(1)
        .mount(&app.twilio)
        .await;

    let r = app
        .post(
            &format!("/api/issues/{issue}/replies"),
            &app.admin_token,
            json!({"body": "On its way"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["kind"], "reply");
    assert_eq!(r.body["delivery"]["status"], "queued");
    assert_eq!(r.body["channel"], "sms");
    let reply_id = r.body["id"].as_i64().unwrap();

    app.eventually(10, "the reply to be handed to Twilio", || async {
        let m = timeline(&app, issue).await;
        m.iter()
            .any(|m| m["id"] == reply_id && m["external_id"] == "SMreply0001")
    })
    .await;

    // Delivery callbacks move the status forward only.
    let cb = |status: &'static str| {
        let app = &app;
        async move {
            app.signed_webhook(
                "/webhooks/twilio/status",
                &[
                    ("MessageSid", "SMreply0001"),
                    ("MessageStatus", status),
                    ("AccountSid", ACCOUNT_SID),
                ],
            )
            .await
        }
    };
    assert_eq!(cb("sent").await.status, StatusCode::OK);
    assert_eq!(cb("delivered").await.status, StatusCode::OK);
    assert_eq!(cb("sent").await.status, StatusCode::OK); // late, out of order
    let m = timeline(&app, issue).await;
    let reply = m.iter().find(|m| m["id"] == reply_id).unwrap();
    assert_eq!(reply["delivery"]["status"], "delivered");
    assert_eq!(reply["delivery"]["error"], Value::Null);
    assert_eq!(reply["author"]["type"], "staff");
    app.twilio.verify().await;
    app.stop().await;
}

async fn permanent_failures_show_the_provider_error(b: Backend) {
    let app = spawn_app(b).await;
    let issue = app.sms_issue("SM0400", ALICE, "Call me").await;
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "code": 21211, "message": "The 'To' number +15550100101 is not a valid phone number.",
            "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400
        })))
        .up_to_n_times(1)
        .expect(1) // never retried
        .mount(&app.twilio)
        .await;
    let r = app
        .post(
            &format!("/api/issues/{issue}/replies"),
            &app.admin_token,
            json!({"body": "Sure"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let id = r.body["id"].as_i64().unwrap();
    app.eventually(10, "the reply to fail", || async {
        timeline(&app, issue)
            .await
            .iter()
            .any(|m| m["id"] == id && m["delivery"]["status"] == "failed")
    })
    .await;
    let m = timeline(&app, issue).await;
    let reply = m.iter().find(|m| m["id"] == id).unwrap();
    assert_eq!(reply["delivery"]["error"]["code"], "21211");
    assert_eq!(
        reply["delivery"]["error"]["message"],
        "The 'To' number +15550100101 is not a valid phone number."
    );
    // Give a wrongful retry (backoff 200 ms in tests) time to happen.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let sent = app.twilio.received_requests().await.unwrap_or_default();
    assert_eq!(sent.len(), 1, "a permanent failure must not be retried");

    // A later failure reported by callback: `undelivered` becomes `failed`
    // with the provider's code and a generic text for it.
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"sid": "SMreply0402", "status": "queued"})),
        )
        .mount(&app.twilio)
        .await;
    let r = app
        .post(
            &format!("/api/issues/{issue}/replies"),
            &app.admin_token,
            json!({"body": "Again"}),
        )
        .await;
    let id = r.body["id"].as_i64().unwrap();
    app.eventually(10, "the second reply to be sent", || async {
        timeline(&app, issue)
            .await
            .iter()
            .any(|m| m["id"] == id && m["external_id"] == "SMreply0402")
    })
    .await;
    let cb = app
        .signed_webhook(
            "/webhooks/twilio/status",
            &[
                ("MessageSid", "SMreply0402"),
                ("MessageStatus", "undelivered"),
                ("ErrorCode", "30003"),
                ("AccountSid", ACCOUNT_SID),
            ],
        )
        .await;
    assert_eq!(cb.status, StatusCode::OK);
    let m = timeline(&app, issue).await;
    let reply = m.iter().find(|m| m["id"] == id).unwrap();
    assert_eq!(reply["delivery"]["status"], "failed");
    assert_eq!(reply["delivery"]["error"]["code"], "30003");
    assert!(
        !reply["delivery"]["error"]["message"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    // Callbacks are signed too.
    let forged = app
        .webhook_with_signature(
            "/webhooks/twilio/status",
            &[
                ("MessageSid", "SMreply0402"),
                ("MessageStatus", "delivered"),
            ],
            Some("forged"),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    app.stop().await;
}

async fn stop_and_start_opt_out(b: Backend) {
    let app = spawn_app(b).await;
    let issue = app.sms_issue("SM0500", ALICE, "Hi there").await;
    assert_eq!(
        app.sms("SM0501", ALICE, "STOP").await.status,
        StatusCode::OK
    );
    let customer = app
        .get(&format!("/api/issues/{issue}"), &app.admin_token)
        .await
        .body["customer"]["id"]
        .as_i64()
        .unwrap();
    let view = app
        .get(&format!("/api/customers/{customer}"), &app.admin_token)
        .await;
    assert_eq!(
        view.body["contacts"][0],
        json!({"kind": "phone", "value": ALICE, "opted_out": true})
    );
    let r = app
        .post(
            &format!("/api/issues/{issue}/replies"),
            &app.admin_token,
            json!({"body": "Hello?"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "contact_opted_out");
    let events: Vec<Value> = timeline(&app, issue)
        .await
        .into_iter()
        .filter(|m| m["kind"] == "event")
        .collect();
    assert_eq!(events.last().unwrap()["event"]["type"], "opted_out");
    assert_eq!(events.last().unwrap()["event"]["actor"], Value::Null);

    assert_eq!(
        app.sms("SM0502", ALICE, "start").await.status,
        StatusCode::OK
    );
    let view = app
        .get(&format!("/api/customers/{customer}"), &app.admin_token)
        .await;
    assert_eq!(view.body["contacts"][0]["opted_out"], false);
    let events: Vec<Value> = timeline(&app, issue)
        .await
        .into_iter()
        .filter(|m| m["kind"] == "event")
        .collect();
    assert_eq!(events.last().unwrap()["event"]["type"], "opted_in");
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"sid": "SMreply0503", "status": "queued"})),
        )
        .mount(&app.twilio)
        .await;
    let r = app
        .post(
            &format!("/api/issues/{issue}/replies"),
            &app.admin_token,
            json!({"body": "Welcome back"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    app.stop().await;
}

async fn fifty_concurrent_first_messages_make_one_issue(b: Backend) {
    let app = spawn_app(b).await;
    let sends = (0..50).map(|i| {
        let app = &app;
        async move {
            app.sms(
                &format!("SMc{i:04}"),
                "+15550100199",
                &format!("message {i}"),
            )
            .await
            .status
        }
    });
    let statuses = futures::future::join_all(sends).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let list = app.get("/api/issues?status=open", &app.admin_token).await;
    let issues = list.body["issues"].as_array().unwrap();
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0]["message_count"], 50);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM customers").await, 1);
    app.stop().await;
}

async fn readyz_shows_a_failing_twilio_but_stays_ready(b: Backend) {
    let app = spawn_app(b).await;
    let issue = app.sms_issue("SM0600", ALICE, "Anyone?").await;
    let ready = app
        .request(reqwest::Method::GET, "/readyz", None, None)
        .await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["ready"], true);
    assert_eq!(ready.body["checks"]["database"]["ok"], true);
    assert_eq!(ready.body["checks"]["twilio"]["ok"], true);
    assert!(ready.body["checks"]["twilio"]["last_success"].is_string());
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .respond_with(ResponseTemplate::new(503))
        .mount(&app.twilio)
        .await;
    let r = app
        .post(
            &format!("/api/issues/{issue}/replies"),
            &app.admin_token,
            json!({"body": "Yes"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    app.eventually(10, "/readyz to show Twilio failing", || async {
        let r = app
            .request(reqwest::Method::GET, "/readyz", None, None)
            .await;
        r.status == StatusCode::OK
            && r.body["ready"] == true
            && r.body["checks"]["twilio"]["ok"] == false
    })
    .await;
    let r = app
        .request(reqwest::Method::GET, "/readyz", None, None)
        .await;
    assert!(
        r.body["checks"]["twilio"]["error"]
            .as_str()
            .unwrap()
            .contains("503"),
        "{}",
        r.text
    );
    app.stop().await;
}

async fn mms_media_become_attachments(b: Backend) {
    let app = spawn_app(b).await;
    let png: Vec<u8> = vec![0x89, b'P', b'N', b'G', 13, 10, 26, 10, 1, 2, 3, 4];
    Mock::given(method("GET"))
        .and(path("/media/ME1"))
        .and(basic_auth(ACCOUNT_SID, AUTH_TOKEN))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "image/png")
                .set_body_bytes(png.clone()),
        )
        .mount(&app.twilio)
        .await;
    // Fails once, then works: retried.
    Mock::given(method("GET"))
        .and(path("/media/ME3"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&app.twilio)
        .await;
    Mock::given(method("GET"))
        .and(path("/media/ME3"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/pdf")
                .set_body_bytes(b"%PDF-1.4 test".to_vec()),
        )
        .mount(&app.twilio)
        .await;
    let m1 = format!("{}/media/ME1", app.twilio.uri());
    let m2 = format!("{}/media/ME2", app.twilio.uri());
    let m3 = format!("{}/media/ME3", app.twilio.uri());
    let r = app
        .signed_webhook(
            "/webhooks/twilio/sms",
            &[
                ("MessageSid", "MM0700"),
                ("AccountSid", ACCOUNT_SID),
                ("From", ALICE),
                ("To", OUR_NUMBER),
                ("Body", "Here is a photo"),
                ("NumMedia", "3"),
                ("MediaUrl0", &m1),
                ("MediaContentType0", "image/png"),
                ("MediaUrl1", &m2),
                ("MediaContentType1", "application/zip"),
                ("MediaUrl2", &m3),
                ("MediaContentType2", "application/pdf"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The text is there at once.
    let list = app.get("/api/issues", &app.admin_token).await;
    let issue = list.body["issues"][0]["id"].as_i64().unwrap();
    assert_eq!(
        list.body["issues"][0]["last_message_preview"],
        "Here is a photo"
    );
    app.eventually(15, "all three media to be handled", || async {
        let m = timeline(&app, issue).await;
        let msg = &m[0];
        msg["attachments"].as_array().unwrap().len() == 2
            && msg["refused_attachments"].as_array().unwrap().len() == 1
    })
    .await;
    let msg = &timeline(&app, issue).await[0];
    let refused = &msg["refused_attachments"][0];
    assert!(
        refused["reason"].as_str().unwrap().contains("zip"),
        "{refused}"
    );
    let files = app
        .get(
            &format!("/api/issues/{issue}/attachments"),
            &app.admin_token,
        )
        .await;
    assert_eq!(files.status, StatusCode::OK);
    assert_eq!(files.body["images"].as_array().unwrap().len(), 1);
    assert_eq!(files.body["documents"].as_array().unwrap().len(), 1);
    let image = &files.body["images"][0];
    assert_eq!(image["content_type"], "image/png");
    assert_eq!(image["size"], png.len());
    let id = image["id"].as_i64().unwrap();
    let (_, agent) = app.add_staff("Agent Files", "agent").await;
    let dl = app
        .http
        .get(format!("{}/api/attachments/{id}", app.base))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(dl.status(), StatusCode::OK);
    assert_eq!(dl.headers()["content-type"], "image/png");
    assert_eq!(dl.headers()["x-content-type-options"], "nosniff");
    assert!(
        dl.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=")
    );
    assert_eq!(dl.bytes().await.unwrap().to_vec(), png);
    let anon = app
        .http
        .get(format!("{}/api/attachments/{id}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), StatusCode::UNAUTHORIZED);
    let missing = app.get("/api/attachments/999999", &agent).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

async fn auto_acknowledgements_are_rate_limited(b: Backend) {
    let app = crate::spawn::spawn_app_with(b, |c| {
        c.auto_ack.enabled = true;
        c.auto_ack.max_per_hour = 2;
    })
    .await;
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"sid": "SMack", "status": "queued"})),
        )
        .mount(&app.twilio)
        .await;
    let mut issues = Vec::new();
    for round in 0..3 {
        let issue = app
            .sms_issue(
                &format!("SM08{round}0"),
                ALICE,
                &format!("Problem number {round}"),
            )
            .await;
        // A follow-up on the same issue is not acknowledged again.
        assert_eq!(
            app.sms(&format!("SM08{round}1"), ALICE, "more details")
                .await
                .status,
            StatusCode::OK
        );
        assert_eq!(
            app.post(
                &format!("/api/issues/{issue}/resolve"),
                &app.admin_token,
                json!({})
            )
            .await
            .status,
            StatusCode::OK
        );
        issues.push(issue);
    }
    app.eventually(10, "two acknowledgements to be sent", || async {
        app.twilio
            .received_requests()
            .await
            .unwrap_or_default()
            .len()
            >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = app.twilio.received_requests().await.unwrap();
    assert_eq!(
        sent.len(),
        2,
        "at most max_per_hour acknowledgements per recipient"
    );
    let body = String::from_utf8_lossy(&sent[0].body).to_string();
    assert!(
        body.contains(&format!("reference+%23{}", issues[0])),
        "{body}"
    );
    let first = timeline(&app, issues[0]).await;
    let ack = first
        .iter()
        .find(|m| m["kind"] == "reply")
        .expect("the acknowledgement is on the timeline");
    assert_eq!(ack["author"]["type"], "system");
    assert_eq!(first.iter().filter(|m| m["kind"] == "reply").count(), 1);
    assert!(
        !timeline(&app, issues[2])
            .await
            .iter()
            .any(|m| m["kind"] == "reply")
    );
    app.stop().await;
}

async fn broadcasts_skip_opted_out_and_report_progress(b: Backend) {
    let app = spawn_app(b).await;
    Mock::given(method("POST"))
        .and(path(messages_path()))
        .and(body_string_contains("Body=We+are+closed+on+Monday"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"sid": "SMbc", "status": "queued"})),
        )
        .expect(2)
        .mount(&app.twilio)
        .await;
    app.sms_issue("SM0900", ALICE, "hi").await;
    app.sms_issue("SM0901", BOB, "hello").await;
    app.sms_issue("SM0902", "+15550100103", "hey").await;
    assert_eq!(
        app.sms("SM0903", "+15550100103", "STOP").await.status,
        StatusCode::OK
    );
    let (_, agent) = app.add_staff("Agent B", "agent").await;
    let r = app
        .post(
            "/api/broadcasts",
            &agent,
            json!({"body": "We are closed on Monday", "customer_ids": "all"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .post(
            "/api/broadcasts",
            &app.admin_token,
            json!({"body": "We are closed on Monday", "customer_ids": "all"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["total"], 3);
    assert_eq!(r.body["counts"]["skipped"], 1);
    assert_eq!(r.body["counts"]["queued"], 2);
    let skipped = r.body["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["status"] == "skipped")
        .unwrap()
        .clone();
    assert_eq!(skipped["contact"], "+15550100103");
    assert!(skipped["error"].as_str().unwrap().contains("opted out"));
    let id = r.body["id"].as_i64().unwrap();
    app.eventually(10, "the broadcast to finish", || async {
        app.get(&format!("/api/broadcasts/{id}"), &app.admin_token)
            .await
            .body["status"]
            == "done"
    })
    .await;
    let done = app
        .get(&format!("/api/broadcasts/{id}"), &app.admin_token)
        .await;
    assert_eq!(done.body["counts"]["sent"], 2);
    let bad = app
        .post(
            "/api/broadcasts",
            &app.admin_token,
            json!({"body": "x", "customer_ids": [999999]}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad = app
        .post(
            "/api/broadcasts",
            &app.admin_token,
            json!({"body": "x", "customer_ids": "some"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    app.twilio.verify().await;
    app.stop().await;
}

both_backends!(
    inbound_is_acknowledged_with_twiml_and_threaded,
    bad_signatures_are_refused_counted_and_logged,
    malformed_webhooks_get_clear_errors,
    replies_go_out_and_retry_on_429,
    permanent_failures_show_the_provider_error,
    stop_and_start_opt_out,
    fifty_concurrent_first_messages_make_one_issue,
    readyz_shows_a_failing_twilio_but_stays_ready,
    mms_media_become_attachments,
    auto_acknowledgements_are_rate_limited,
    broadcasts_skip_opted_out_and_report_progress,
);
