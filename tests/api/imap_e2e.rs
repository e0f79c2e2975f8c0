//! The whole email path through the running app: mail delivered into a
//! real Dovecot mailbox is fetched, threaded into an issue, marked seen
//! only after it is stored, and shown in /readyz; a reply goes out over
//! SMTP and the customer's answer, delivered to Dovecot, threads back.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use switchboard::config::{Dur, ImapConfig, Secret, Security};

use crate::dovecot::Dovecot;
use crate::helpers::Backend;
use crate::smtp_sink::SmtpSink;
use crate::spawn::spawn_app_with;

async fn mail_from_dovecot_becomes_an_issue(b: Backend) {
    let dc = Dovecot::start().await;
    dc.add_user("support", "s3cret").await;
    let sink = SmtpSink::start();
    let (imap_port, smtp_port) = (dc.imap_port, sink.port);
    let app = spawn_app_with(b, move |c| {
        c.imap = vec![ImapConfig {
            name: "support".into(),
            host: "127.0.0.1".into(),
            port: Some(imap_port),
            security: Security::Plain,
            username: "support".into(),
            password: Some(Secret::new("s3cret")),
            address: Some("support@switchboard.test".into()),
            poll_interval: Dur(Duration::from_millis(300)),
            ..ImapConfig::default()
        }];
        c.smtp.host = "127.0.0.1".into();
        c.smtp.port = Some(smtp_port);
        c.smtp.security = Security::Plain;
        c.smtp.from = "Switchboard <noreply@switchboard.test>".into();
    })
    .await;
    let plain = std::fs::read(format!(
        "{}/tests/fixtures/mail/plain.eml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    dc.append("support", "INBOX", &plain).await;
    app.eventually(20, "the mail to become an issue", || async {
        !app.get("/api/issues", &app.admin_token).await.body["issues"]
            .as_array()
            .unwrap()
            .is_empty()
    })
    .await;
    let list = app.get("/api/issues", &app.admin_token).await;
    let issue = list.body["issues"][0]["id"].as_i64().unwrap();
    assert_eq!(list.body["issues"][0]["subject"], "Printer on fire");
    // Acknowledged on the server (after_ingest = seen) once stored.
    app.eventually(10, "the mail to be marked seen", || async {
        dc.messages("support", "INBOX")
            .await
            .iter()
            .all(|(_, flags)| flags.iter().any(|f| f == "Seen"))
    })
    .await;
    let ready = app.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        ready.body["checks"]["imap:support"]["ok"], true,
        "{}",
        ready.text
    );
    assert!(ready.body["checks"]["imap:support"]["last_success"].is_string());

    // Reply from the mailbox's address; the answer threads back.
    let r = app
        .post(
            &format!("/api/issues/{issue}/replies"),
            &app.admin_token,
            json!({"body": "We are on it"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let sent = sink.wait_for(1, 10).await;
    let reply = sent
        .iter()
        .find(|m| m.rcpt_tos == vec!["alice@example.com"])
        .unwrap();
    assert_eq!(reply.mail_from, "support@switchboard.test");
    let our_id = reply.header("Message-ID").unwrap();
    let answer = format!(
        "From: Alice Example <alice@example.com>\r\nTo: support@switchboard.test\r\nSubject: Re: Printer on fire [#{issue}]\r\nMessage-ID: <answer-1@example.com>\r\nIn-Reply-To: {our_id}\r\nDate: Mon, 03 Jun 2024 11:00:00 +0000\r\nContent-Type: text/plain\r\n\r\nThanks, it is out now.\r\n\r\nOn Mon, Jun 3, 2024 Support wrote:\r\n> We are on it\r\n"
    );
    dc.append("support", "INBOX", answer.as_bytes()).await;
    app.eventually(20, "the answer to thread back", || async {
        let msgs = app
            .get(&format!("/api/issues/{issue}/messages"), &app.admin_token)
            .await;
        msgs.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["external_id"] == "answer-1@example.com")
    })
    .await;
    let msgs = app
        .get(&format!("/api/issues/{issue}/messages"), &app.admin_token)
        .await;
    let answer = msgs.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["external_id"] == "answer-1@example.com")
        .unwrap()
        .clone();
    assert_eq!(answer["threading_rule"], "reference");
    assert_eq!(
        answer["body"], "Thanks, it is out now.",
        "quoted history is stripped from the displayed body"
    );
    app.stop().await;
}

both_backends!(mail_from_dovecot_becomes_an_issue);
