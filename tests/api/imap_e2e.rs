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

/// The `support` mailbox of the test Dovecot on `port`.
fn support_mailbox(port: u16) -> ImapConfig {
    ImapConfig {
        name: "support".into(),
        host: "127.0.0.1".into(),
        port: Some(port),
        security: Security::Plain,
        username: "support".into(),
        password: Some(Secret::new("s3cret")),
        address: Some("support@switchboard.test".into()),
        poll_interval: Dur(Duration::from_millis(300)),
        ..ImapConfig::default()
    }
}

async fn mail_from_dovecot_becomes_an_issue(b: Backend) {
    let dc = Dovecot::start().await;
    dc.add_user("support", "s3cret").await;
    let sink = SmtpSink::start();
    let (imap_port, smtp_port) = (dc.imap_port, sink.port);
    let app = spawn_app_with(b, move |c| {
        c.imap = vec![support_mailbox(imap_port)];
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

/// SPEC §7: with two instances on one PostgreSQL, one polls the mailbox and
/// the other stands by; when the first stops, the second takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_polls_a_mailbox_and_another_takes_over() {
    let dc = Dovecot::start().await;
    dc.add_user("support", "s3cret").await;
    let port = dc.imap_port;
    let mailbox = move || support_mailbox(port);
    let mut first = spawn_app_with(Backend::Postgres, move |c| c.imap = vec![mailbox()]).await;
    let shared_db = first.db.url.clone();
    let second = spawn_app_with(Backend::Postgres, move |c| {
        c.imap = vec![mailbox()];
        c.database.url = shared_db;
    })
    .await;
    let token = first.admin_token.clone();
    let imap_state = |app: &crate::spawn::TestApp| {
        let app_base = app.base.clone();
        async move {
            let r: serde_json::Value = reqwest::get(format!("{app_base}/readyz"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["checks"]["imap:support"].clone()
        }
    };
    first
        .eventually(10, "the second instance to stand by", || async {
            imap_state(&second).await["standby"].is_string()
        })
        .await;
    assert!(imap_state(&first).await["standby"].is_null());

    let mail = |n: u32| {
        format!(
            "From: Customer {n} <c{n}@example.com>\r\nTo: support@switchboard.test\r\nSubject: Question {n}\r\nMessage-ID: <q{n}@example.com>\r\n\r\nHello {n}\r\n"
        )
    };
    let issues = |app: &crate::spawn::TestApp| {
        let (base, token) = (app.base.clone(), token.clone());
        async move {
            let r: serde_json::Value = reqwest::Client::new()
                .get(format!("{base}/api/issues?limit=100"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["issues"].as_array().unwrap().len()
        }
    };
    dc.append("support", "INBOX", mail(1).as_bytes()).await;
    second
        .eventually(20, "the first mail to become an issue", || async {
            issues(&first).await == 1
        })
        .await;
    assert!(imap_state(&second).await["standby"].is_string());

    // The polling instance stops cleanly: the other takes the mailbox.
    let second_base = second.base.clone();
    first.halt().await;
    dc.append("support", "INBOX", mail(2).as_bytes()).await;
    second
        .eventually(
            20,
            "the second instance to take over and ingest",
            || async { issues(&second).await == 2 },
        )
        .await;
    let state = imap_state(&second).await;
    assert!(state["standby"].is_null(), "{state}");
    assert!(
        state["last_success"].is_string(),
        "{state} at {second_base}"
    );
    second.stop().await;
    first.stop().await;
}

both_backends!(mail_from_dovecot_becomes_an_issue);
