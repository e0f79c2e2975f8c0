//! Regression tests for the reliability and security defects of issue 11:
//! each test here failed before its fix. Kept together so the list of
//! hardening rules is one file to read.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::Backend;
use crate::spawn::{ACCOUNT_SID, TestApp, spawn_app, spawn_app_tuned};

const ALICE: &str = "+15550100301";

/// Twilio accepts every outbound message.
async fn twilio_accepts(app: &TestApp) {
    Mock::given(method("POST"))
        .and(path(format!(
            "/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        )))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"sid": "SMok", "status": "queued"})),
        )
        .mount(&app.twilio)
        .await;
}

async fn rejected_log(app: &TestApp) -> Vec<Value> {
    let r = app.get("/api/rejected?limit=500", &app.admin_token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["rejected"].as_array().unwrap().clone()
}

/// Creates a trigger that makes the database refuse a write as data:
/// PostgreSQL with SQLSTATE `code`, SQLite with RAISE(ABORT) (a
/// constraint error). `when` is a condition on NEW; `event` e.g.
/// `BEFORE INSERT ON messages`.
async fn refuse_writes(app: &TestApp, name: &str, event: &str, when: &str, code: &str) {
    match app.db.backend {
        Backend::Sqlite => {
            app.db
                .exec(&format!(
                    "CREATE TRIGGER {name} {event} FOR EACH ROW WHEN {when} \
                     BEGIN SELECT RAISE(ABORT, 'refused by test'); END"
                ))
                .await
        }
        Backend::Postgres => {
            app.db
                .exec(&format!(
                    "CREATE FUNCTION {name}() RETURNS trigger AS $$ BEGIN \
                     IF {when} THEN RAISE EXCEPTION 'refused by test' USING ERRCODE = '{code}'; END IF; \
                     RETURN NEW; END $$ LANGUAGE plpgsql"
                ))
                .await;
            app.db
                .exec(&format!(
                    "CREATE TRIGGER {name} {event} FOR EACH ROW EXECUTE FUNCTION {name}()"
                ))
                .await
        }
    }
}

/// Item 6: a made-up method or a made-up path never becomes a `/metrics`
/// label (each distinct label value is a series kept until restart).
async fn metrics_labels_are_never_caller_supplied(b: Backend) {
    let app = spawn_app(b).await;
    let odd = Method::from_bytes(format!("BREWCOFFEE{}", "X".repeat(2000)).as_bytes()).unwrap();
    for path in ["/api/issues", "/zz-made-up-path-4711"] {
        let r = app.request(odd.clone(), path, None, None).await;
        assert!(r.status.is_client_error(), "{path}: {}", r.status);
    }
    let r = app
        .request(Method::GET, "/zz-made-up-path-4712", None, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let metrics = app.request(Method::GET, "/metrics", None, None).await.text;
    assert!(
        !metrics.contains("BREWCOFFEE"),
        "a made-up method became a label"
    );
    assert!(
        !metrics.contains("zz-made-up-path"),
        "a made-up path became a label"
    );
    assert!(
        metrics.contains(r#"method="other""#),
        "the odd method is counted as other"
    );
    assert!(metrics.contains(r#"route="unmatched""#), "{metrics}");
    app.stop().await;
}

/// Item 9: NUL characters from outside are dropped at every edge, so
/// PostgreSQL never answers them with a 500.
async fn nul_characters_are_dropped_at_every_edge(b: Backend) {
    let app = spawn_app(b).await;
    twilio_accepts(&app).await;
    let r = app
        .sms("SMnul0001", &format!("{ALICE}\0"), "hello\0 world")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let list = app.get("/api/issues", &app.admin_token).await;
    let issue = list.body["issues"][0]["id"].as_i64().expect("an issue");
    let msgs = app
        .get(&format!("/api/issues/{issue}/messages"), &app.admin_token)
        .await;
    assert_eq!(
        msgs.body["messages"][0]["body"], "hello world",
        "{}",
        msgs.text
    );

    let r = app
        .post(
            &format!("/api/issues/{issue}/comments"),
            &app.admin_token,
            json!({"body": "a note\u{0}here"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["body"], "a notehere");
    let r = app
        .post(
            &format!("/api/issues/{issue}/replies"),
            &app.admin_token,
            json!({"body": "a reply\u{0}"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["body"], "a reply");
    let r = app
        .post(
            "/api/issues",
            &app.admin_token,
            json!({"contact": "+15550100302", "subject": "New\u{0} ticket", "body": "first\u{0}"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["subject"], "New ticket");
    for q in ["%00", "hello%00", "%00%00x"] {
        let r = app
            .get(&format!("/api/issues?q={q}"), &app.admin_token)
            .await;
        assert_eq!(r.status, StatusCode::OK, "q={q}: {}", r.text);
    }
    // Literal text that looks like an escape is kept as written.
    let r = app
        .post(
            &format!("/api/issues/{issue}/comments"),
            &app.admin_token,
            json!({"body": "C:\\u0000 is a path"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["body"], "C:\\u0000 is a path");
    app.stop().await;
}

/// Item 9: a signed message the database refuses as data (here a trigger
/// stands in for whatever it may refuse) is kept in the rejected log and
/// acknowledged, instead of a 500 on every Twilio retry.
async fn a_poison_sms_is_kept_in_the_rejected_log_and_acknowledged(b: Backend) {
    let app = spawn_app(b).await;
    refuse_writes(
        &app,
        "poison",
        "BEFORE INSERT ON messages",
        "NEW.body LIKE '%POISON%'",
        "22021",
    )
    .await;
    for _ in 0..2 {
        let r = app
            .sms("SMpoison01", ALICE, "this text is POISON to the database")
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(r.text.contains("<Response></Response>"), "{}", r.text);
    }
    let log = rejected_log(&app).await;
    let kept = log
        .iter()
        .find(|e| e["reason"] == "unstorable")
        .unwrap_or_else(|| panic!("no unstorable entry in {log:?}"));
    assert_eq!(kept["kind"], "webhook");
    assert_eq!(kept["detail"]["message_sid"], "SMpoison01");
    assert_eq!(
        kept["detail"]["body"],
        "this text is POISON to the database"
    );
    assert_eq!(kept["detail"]["from"], ALICE);
    // Other messages still go in.
    let r = app.sms("SMpoison02", ALICE, "a normal message").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM messages").await, 1);
    app.stop().await;
}

/// Item 4: a broadcast job and its recipient's result are written in one
/// transaction: if the recipient cannot be updated, the job is not marked
/// done either (it used to be, leaving the recipient `queued` for ever).
async fn a_broadcast_job_is_never_done_while_its_recipient_is_queued(b: Backend) {
    let app = spawn_app(b).await;
    twilio_accepts(&app).await;
    app.sms_issue("SMbq0001", ALICE, "hello").await;
    refuse_writes(
        &app,
        "no_result",
        "BEFORE UPDATE ON broadcast_recipients",
        "1 = 1",
        "23514",
    )
    .await;
    let r = app
        .post(
            "/api/broadcasts",
            &app.admin_token,
            json!({"body": "We are closed on Monday", "customer_ids": "all"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    app.eventually(10, "the broadcast SMS to be sent", || async {
        app.twilio
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains("closed+on+Monday"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM broadcast_recipients WHERE status = 'queued'")
            .await,
        1
    );
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM outbox WHERE kind = 'broadcast' AND state IN ('done', 'failed')")
            .await,
        0,
        "the job finished while its recipient is still queued"
    );
    app.stop().await;
}

/// Item 12: a broadcast that reaches SMS customers is capped like a reply.
async fn sms_broadcasts_are_capped_like_replies(b: Backend) {
    let app = spawn_app(b).await;
    twilio_accepts(&app).await;
    app.sms_issue("SMcap0001", ALICE, "hello").await;
    let r = app
        .post(
            "/api/broadcasts",
            &app.admin_token,
            json!({"body": "x".repeat(1601), "customer_ids": "all"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.code(), "body_too_long");
    assert_eq!(app.db.count("SELECT COUNT(*) FROM broadcasts").await, 0);
    let r = app
        .post(
            "/api/broadcasts",
            &app.admin_token,
            json!({"body": "é".repeat(1600), "customer_ids": "all"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    app.stop().await;
}

/// Item 7: what anyone can add to the rejected log is bounded: each field
/// is capped (with its original length), a 413 keeps no body, and the
/// housekeeping job purges rows older than `retention.rejected`.
async fn the_rejected_log_is_capped_and_purged(b: Backend) {
    let app = spawn_app(b).await;
    let huge_sid = "S".repeat(60_000);
    let r = app
        .webhook_with_signature(
            "/webhooks/twilio/sms",
            &[("MessageSid", huge_sid.as_str()), ("From", ALICE)],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .webhook_with_signature(
            "/webhooks/twilio/sms",
            &[("MessageSid", "SMbig"), ("Body", &"b".repeat(70_000))],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);

    let details = app.db.strings("SELECT detail FROM rejected").await;
    assert_eq!(details.len(), 2, "{details:?}");
    for d in &details {
        assert!(d.len() < 1_000, "a rejected row keeps {} bytes", d.len());
        assert!(!d.contains("bbbbbbbb"), "a 413 kept its body: {d}");
    }
    let log = rejected_log(&app).await;
    let unsigned = log
        .iter()
        .find(|e| e["reason"] == "missing_signature")
        .expect("the unsigned webhook");
    assert_eq!(
        unsigned["detail"]["message_sid"].as_str().unwrap().len(),
        64
    );
    assert_eq!(unsigned["detail"]["message_sid_length"], 60_000);
    assert_eq!(unsigned["repeats"], 1);
    assert_eq!(unsigned["source"], "127.0.0.1");

    // A flood of forged webhooks from one address: one row with a count,
    // not a row each; the metric still counts every one.
    for n in 0..25 {
        let sid = format!("SMflood{n}");
        let r = app
            .webhook_with_signature(
                "/webhooks/twilio/sms",
                &[("MessageSid", sid.as_str()), ("From", ALICE)],
                Some("forged"),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    let log = rejected_log(&app).await;
    let forged: Vec<_> = log
        .iter()
        .filter(|e| e["reason"] == "bad_signature")
        .collect();
    assert_eq!(forged.len(), 1, "{log:?}");
    assert_eq!(forged[0]["repeats"], 25);
    assert_eq!(
        forged[0]["detail"]["message_sid"], "SMflood0",
        "the first is kept"
    );
    assert!(
        forged[0]["last_received_at"].as_str().unwrap()
            >= forged[0]["received_at"].as_str().unwrap()
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM rejected").await, 3);

    use switchboard::config::Dur;
    use switchboard::schedule::{Task, run_task};
    let task = Task::Housekeeping {
        notifications: Dur::parse("30d").unwrap(),
        rejected: Dur::parse("30d").unwrap(),
    };
    let now = switchboard::store::now();
    run_task(&app.db.store, &task, now).await.unwrap();
    assert_eq!(app.db.count("SELECT COUNT(*) FROM rejected").await, 3);
    run_task(&app.db.store, &task, now + chrono::Duration::days(31))
        .await
        .unwrap();
    assert_eq!(app.db.count("SELECT COUNT(*) FROM rejected").await, 0);
    app.stop().await;
}

/// Item 10: media is fetched with the account's credentials only from the
/// configured Twilio API host; a `MediaUrl` elsewhere is refused with a
/// reason and never requested, and a redirect off the API host carries no
/// credentials.
async fn media_is_fetched_only_from_the_twilio_host(b: Backend) {
    let app = spawn_app(b).await;
    let elsewhere = wiremock::MockServer::start().await;
    let png: Vec<u8> = vec![0x89, b'P', b'N', b'G', 13, 10, 26, 10, 1, 2, 3, 4];
    Mock::given(method("GET"))
        .and(path("/media/ME2"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/cdn/ME2", elsewhere.uri())),
        )
        .mount(&app.twilio)
        .await;
    Mock::given(method("GET"))
        .and(path("/cdn/ME2"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "image/png")
                .set_body_bytes(png),
        )
        .mount(&elsewhere)
        .await;
    let foreign = format!("{}/media/ME1", elsewhere.uri());
    let via_redirect = format!("{}/media/ME2", app.twilio.uri());
    let r = app
        .signed_webhook(
            "/webhooks/twilio/sms",
            &[
                ("MessageSid", "MMhost01"),
                ("AccountSid", ACCOUNT_SID),
                ("From", ALICE),
                ("Body", "two pictures"),
                ("NumMedia", "2"),
                ("MediaUrl0", &foreign),
                ("MediaContentType0", "image/png"),
                ("MediaUrl1", &via_redirect),
                ("MediaContentType1", "image/png"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let list = app.get("/api/issues", &app.admin_token).await;
    let issue = list.body["issues"][0]["id"].as_i64().unwrap();
    let message = || async {
        app.get(&format!("/api/issues/{issue}/messages"), &app.admin_token)
            .await
            .body["messages"][0]
            .clone()
    };
    app.eventually(15, "both media to be handled", || async {
        let m = message().await;
        m["attachments"].as_array().is_some_and(|a| a.len() == 1)
            && m["refused_attachments"]
                .as_array()
                .is_some_and(|a| a.len() == 1)
    })
    .await;
    let m = message().await;
    let reason = m["refused_attachments"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("media_host_refused"), "{reason}");
    let seen = elsewhere.received_requests().await.unwrap();
    assert!(
        seen.iter().all(|r| r.url.path() != "/media/ME1"),
        "a media URL on another host was fetched"
    );
    assert_eq!(seen.len(), 1, "only the redirect target: {seen:?}");
    assert!(
        !seen[0].headers.contains_key("authorization"),
        "credentials followed a redirect to another host"
    );
    app.stop().await;
}

/// Reads from `sock` until the server closes it; the time that took, or
/// None if it was still open after `limit`.
async fn closed_within(sock: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let start = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

/// Item 11: a connection that sends half a request line, or nothing, or
/// goes quiet after the HTTP/2 preface, is dropped within the timeouts;
/// and connections beyond the bound wait for a free slot.
async fn slow_and_idle_connections_are_dropped(b: Backend) {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_tuned(
        b,
        |_| {},
        |o| {
            o.http_limits = switchboard::serve::Limits {
                header_read_timeout: Duration::from_secs(1),
                idle_timeout: Duration::from_secs(2),
                max_connections: 3,
            }
        },
    )
    .await;
    let mut half = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    half.write_all(b"GET /healthz HT").await.unwrap();
    let mut silent = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut h2 = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    // All three slots are held: a fourth connection waits for one.
    let start = std::time::Instant::now();
    let r = app.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        start.elapsed() >= Duration::from_millis(700),
        "served at once although every connection slot was taken"
    );
    for (name, sock) in [("half a request line", &mut half), ("nothing", &mut silent)] {
        let took = closed_within(sock, Duration::from_secs(5)).await;
        assert!(took.is_some(), "a connection that sent {name} was kept");
    }
    let took = closed_within(&mut h2, Duration::from_secs(6)).await;
    assert!(took.is_some(), "an idle HTTP/2 connection was kept");
    // Ordinary requests are unaffected. A fresh connection: the pooled one
    // from the request above sat idle past the 2 s idle timeout, and the
    // server closing it is this test's point, not a failure.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let r = fresh
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}

/// Item 12: API JSON is `nosniff` and `no-store`; an oversized request
/// target or head gets a JSON 414 or 431; `/readyz` shows reason codes,
/// never error text (which named the Account SID and internal URLs).
async fn small_items(b: Backend) {
    let app = spawn_app(b).await;
    for r in [
        app.get("/api/issues", &app.admin_token).await,
        app.get("/api/nope", &app.admin_token).await,
        app.request(Method::GET, "/readyz", None, None).await,
    ] {
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{r:?}");
        assert_eq!(r.headers["cache-control"], "no-store", "{r:?}");
    }
    let long = format!("/api/issues?q={}", "a".repeat(10_000));
    let r = app.get(&long, &app.admin_token).await;
    assert_eq!(r.status, StatusCode::URI_TOO_LONG);
    assert_eq!(r.code(), "uri_too_long", "{}", r.text);
    let r = app
        .http
        .get(format!("{}/api/issues", app.base))
        .bearer_auth(&app.admin_token)
        .header("x-filler", "f".repeat(40_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "headers_too_large");
    let mut req = app.http.get(format!("{}/healthz", app.base));
    for i in 0..150 {
        req = req.header(format!("x-h{i}"), "v");
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "headers_too_large");

    // Twilio failing: the check says so with a code, not Twilio's words.
    Mock::given(method("POST"))
        .and(path(format!(
            "/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        )))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({
            "code": 20500,
            "message": format!("internal error for {ACCOUNT_SID} at http://10.1.2.3/internal"),
        })))
        .mount(&app.twilio)
        .await;
    let issue = app.sms_issue("SMready01", ALICE, "hello").await;
    let r = app
        .post(
            &format!("/api/issues/{issue}/replies"),
            &app.admin_token,
            json!({"body": "hi"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    app.eventually(10, "/readyz to show Twilio failing", || async {
        let r = app.request(Method::GET, "/readyz", None, None).await;
        r.body["checks"]["twilio"]["ok"] == false
    })
    .await;
    let r = app.request(Method::GET, "/readyz", None, None).await;
    assert!(!r.text.contains(ACCOUNT_SID), "{}", r.text);
    assert!(!r.text.contains("10.1.2.3"), "{}", r.text);
    assert!(!r.text.contains(&app.twilio.uri()), "{}", r.text);
    let error = r.body["checks"]["twilio"]["error"].as_str().unwrap();
    assert!(
        error.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "{error}"
    );
    let twilio = r.body["checks"]["twilio"].as_object().unwrap();
    let mut keys: Vec<&str> = twilio.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["error", "last_success", "ok"]);
    app.stop().await;
}

both_backends!(
    small_items,
    slow_and_idle_connections_are_dropped,
    media_is_fetched_only_from_the_twilio_host,
    metrics_labels_are_never_caller_supplied,
    nul_characters_are_dropped_at_every_edge,
    a_poison_sms_is_kept_in_the_rejected_log_and_acknowledged,
    a_broadcast_job_is_never_done_while_its_recipient_is_queued,
    sms_broadcasts_are_capped_like_replies,
    the_rejected_log_is_capped_and_purged,
    one_person_is_one_customer_whatever_digits_they_type,
    every_answer_carries_a_request_id,
);

/// Issue 10 item 7: a request id in every response (the caller's own, or a
/// new one), the same one the request's log lines carry.
async fn every_answer_carries_a_request_id(b: Backend) {
    let app = spawn_app(b).await;
    let mut seen = std::collections::HashSet::new();
    for path in ["/healthz", "/api/issues", "/no/such/route"] {
        let r = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_eq!(id.len(), 36, "a UUID for {path}: {id}");
        assert!(seen.insert(id), "ids are fresh per request");
    }
    let r = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "lb-7f3a")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "lb-7f3a");
    app.stop().await;
}

/// Item 12: full-width and Arabic-Indic digits are the same number, so the
/// same person never becomes two customers; a `whatsapp:` sender stays a
/// different contact; a sender that is no usable id at all is refused and
/// kept in the rejected log with the message.
async fn one_person_is_one_customer_whatever_digits_they_type(b: Backend) {
    let app = spawn_app(b).await;
    let first = app.sms_issue("SMdig0001", "+15550100777", "first").await;
    for (sid, from) in [
        ("SMdig0002", "＋１５５５０１００７７７"),
        ("SMdig0003", "+١٥٥٥٠١٠٠٧٧٧"),
    ] {
        assert_eq!(app.sms_issue(sid, from, "again").await, first, "{from}");
    }
    let r = app
        .sms("SMdig0004", "whatsapp:+15550100777", "other channel")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let list = app.get("/api/issues?limit=100", &app.admin_token).await;
    let issues = list.body["issues"].as_array().unwrap();
    assert_eq!(issues.len(), 2, "one issue each: {}", list.text);
    let wa = issues
        .iter()
        .find(|i| i["customer"]["phone"] == "whatsapp:+15550100777")
        .unwrap_or_else(|| panic!("a WhatsApp sender is another contact: {}", list.text));
    assert_ne!(wa["id"].as_i64(), Some(first));
    let long = "9".repeat(80);
    let r = app.sms("SMdig0005", &long, "who am I").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "invalid_parameter");
    let log = rejected_log(&app).await;
    let row = log
        .iter()
        .find(|r| r["reason"] == "invalid_sender")
        .unwrap_or_else(|| panic!("no invalid_sender row: {log:?}"));
    assert_eq!(row["kind"], "webhook");
    assert_eq!(row["detail"]["message_sid"], "SMdig0005");
    assert_eq!(row["detail"]["body"], "who am I");
    app.stop().await;
}
