//! Email in: raw mail through parsing and SPEC §3.1 threading into
//! issues, auto-replies and bounces, attachments, and the rejected log.
//! (The IMAP transport in front of this is tested against Dovecot.)

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard::attachments::Attachments;
use switchboard::channels::email::ingest::MailIngest;
use switchboard::store::IngestOptions;

use crate::email_out::app_with_smtp;
use crate::helpers::Backend;
use crate::smtp_sink::SmtpSink;
use crate::spawn::TestApp;

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/mail/{name}.eml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

pub(crate) fn ingest_for(app: &TestApp) -> MailIngest {
    let mut options = IngestOptions::from_config(&switchboard::config::Config::default());
    options.own_addresses = vec!["support@switchboard.test".into()];
    MailIngest {
        store: app.db.store.clone(),
        attachments: Attachments {
            dir: app.files.path().to_path_buf(),
            max_bytes: 10 * 1024 * 1024,
            max_files: 10,
            allowed: ["jpg", "jpeg", "png", "gif", "webp", "pdf"]
                .map(String::from)
                .to_vec(),
        },
        options,
        metrics: switchboard::metrics::Metrics::install(),
    }
}

/// A small RFC 5322 message.
fn mail(
    from: &str,
    subject: &str,
    message_id: &str,
    in_reply_to: Option<&str>,
    body: &str,
) -> Vec<u8> {
    let mut m = format!(
        "From: {from}\r\nTo: support@switchboard.test\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\nDate: Mon, 03 Jun 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    );
    if let Some(p) = in_reply_to {
        m.push_str(&format!("In-Reply-To: <{p}>\r\nReferences: <{p}>\r\n"));
    }
    m.push_str("\r\n");
    m.push_str(body);
    m.into_bytes()
}

async fn open_issues(app: &TestApp) -> Vec<Value> {
    app.get("/api/issues?limit=100", &app.admin_token)
        .await
        .body["issues"]
        .as_array()
        .unwrap()
        .clone()
}

async fn timeline(app: &TestApp, issue: i64) -> Vec<Value> {
    app.get(
        &format!("/api/issues/{issue}/messages?limit=100"),
        &app.admin_token,
    )
    .await
    .body["messages"]
        .as_array()
        .unwrap()
        .clone()
}

async fn emails_open_thread_and_attach(b: Backend) {
    let sink = SmtpSink::start();
    let app = app_with_smtp(b, &sink).await;
    let ingest = ingest_for(&app);

    // A plain email opens an issue; the sender is named from the header.
    ingest.ingest("support", 1, fixture("plain")).await.unwrap();
    let issues = open_issues(&app).await;
    assert_eq!(issues.len(), 1);
    let issue = issues[0]["id"].as_i64().unwrap();
    assert_eq!(issues[0]["channel"], "email");
    assert_eq!(issues[0]["subject"], "Printer on fire");
    assert_eq!(issues[0]["customer"]["email"], "alice@example.com");
    assert_eq!(issues[0]["customer"]["name"], "Alice Example");
    // Fetched again after a crash: not stored twice.
    ingest.ingest("support", 1, fixture("plain")).await.unwrap();
    assert_eq!(timeline(&app, issue).await.len(), 1);

    // Attachments from the same customer land on the same issue.
    ingest
        .ingest("support", 2, fixture("attachments"))
        .await
        .unwrap();
    let msgs = timeline(&app, issue).await;
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1]["threading_rule"], "customer");
    let files = app
        .get(
            &format!("/api/issues/{issue}/attachments"),
            &app.admin_token,
        )
        .await;
    let n = files.body["images"].as_array().unwrap().len()
        + files.body["documents"].as_array().unwrap().len();
    assert!(n >= 2, "{}", files.text);

    // Our reply goes out; the customer's answer threads back by reference.
    let r = app
        .post(
            &format!("/api/issues/{issue}/replies"),
            &app.admin_token,
            json!({"body": "Is it still burning?"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let sent = sink.wait_for(1, 10).await;
    let reply = sent
        .iter()
        .find(|m| m.rcpt_tos == vec!["alice@example.com"])
        .expect("the reply");
    assert_eq!(
        reply.header("Subject").unwrap(),
        format!("Re: Printer on fire [#{issue}]")
    );
    assert_eq!(
        reply.header("In-Reply-To").unwrap(),
        "<attach-1@example.com>"
    );
    let our_id = reply.header("Message-ID").unwrap();
    let our_id = our_id.trim_matches(['<', '>']);
    // Closed in between: the answer by reference opens a follow-up issue.
    assert_eq!(
        app.post(
            &format!("/api/issues/{issue}/close"),
            &app.admin_token,
            json!({})
        )
        .await
        .status,
        StatusCode::OK
    );
    ingest
        .ingest(
            "support",
            3,
            mail(
                "Alice Example <alice@example.com>",
                &format!("Re: Printer on fire [#{issue}]"),
                "a-3@example.com",
                Some(our_id),
                "Yes, still burning",
            ),
        )
        .await
        .unwrap();
    let issues = open_issues(&app).await;
    assert_eq!(issues.len(), 1);
    let follow = issues[0]["id"].as_i64().unwrap();
    assert_ne!(follow, issue);
    assert_eq!(issues[0]["previous_issue_id"], issue);
    assert_eq!(issues[0]["subject"], "Printer on fire");
    // With the follow-up open, a reply to our mail threads onto it by the
    // customer, and a stranger quoting its token does not.
    ingest
        .ingest(
            "support",
            4,
            mail(
                "Mallory <mallory@example.net>",
                &format!("Re: [#{follow}] hijack"),
                "m-1@example.net",
                None,
                "let me in",
            ),
        )
        .await
        .unwrap();
    let issues = open_issues(&app).await;
    assert_eq!(issues.len(), 2);
    let mallory = issues
        .iter()
        .find(|i| i["customer"]["email"] == "mallory@example.net")
        .unwrap();
    assert_ne!(mallory["id"], follow);
    assert!(
        timeline(&app, follow)
            .await
            .iter()
            .all(|m| m["body"] != "let me in")
    );
    app.stop().await;
}

async fn auto_replies_and_bounces_never_open_issues(b: Backend) {
    let sink = SmtpSink::start();
    let app = app_with_smtp(b, &sink).await;
    let ingest = ingest_for(&app);
    // An out-of-office naming no issue of ours: kept in the rejected log.
    ingest
        .ingest("support", 1, fixture("out_of_office"))
        .await
        .unwrap();
    ingest
        .ingest("support", 2, fixture("newsletter"))
        .await
        .unwrap();
    assert!(open_issues(&app).await.is_empty());
    let rejected = app.get("/api/rejected", &app.admin_token).await;
    let reasons: Vec<&str> = rejected.body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().filter(|r| **r == "automated").count() >= 2,
        "{reasons:?}"
    );
    assert!(
        rejected.body["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["kind"] == "mail")
    );

    // A reply to a customer that bounces: the reply is marked failed, an
    // event is recorded, nothing is opened and nothing is sent back.
    let r = app
        .post(
            "/api/issues",
            &app.admin_token,
            json!({"contact": "nobody@example.net", "subject": "Hello", "body": "Are you there?"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let issue = r.body["id"].as_i64().unwrap();
    let sent = sink.wait_for(1, 10).await;
    let our_id = sent[0].header("Message-ID").unwrap();
    let bounce = String::from_utf8(fixture("bounce"))
        .unwrap()
        .replace("<i42.m7.abc@switchboard.test>", &our_id);
    ingest
        .ingest("support", 3, bounce.into_bytes())
        .await
        .unwrap();
    let msgs = timeline(&app, issue).await;
    let reply = msgs.iter().find(|m| m["kind"] == "reply").unwrap();
    assert_eq!(reply["delivery"]["status"], "failed");
    assert_eq!(reply["delivery"]["error"]["code"], "5.1.1");
    assert!(
        reply["delivery"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("User unknown")
    );
    assert!(msgs.iter().any(|m| m["event"]["type"] == "bounce"));
    assert_eq!(open_issues(&app).await.len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        sink.received().len(),
        1,
        "nothing is sent in answer to a bounce"
    );

    // Garbage: rejected with a reason, never a panic.
    ingest
        .ingest("support", 4, b"\x00\x01garbage".to_vec())
        .await
        .unwrap();
    ingest
        .ingest("support", 5, fixture("no_from"))
        .await
        .unwrap();
    let rejected = app.get("/api/rejected", &app.admin_token).await;
    let reasons: Vec<&str> = rejected.body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| *r == "no_sender" || *r == "unparseable"),
        "{reasons:?}"
    );
    app.stop().await;
}

/// An attachment that cannot be written (here: the directory is a file)
/// fails the whole mail before anything is committed, so it stays on the
/// server and arrives whole, files included, once the disk is fixed.
async fn an_unsaveable_attachment_keeps_the_mail_for_later(b: Backend) {
    let app = crate::spawn::spawn_app(b).await;
    let mut ingest = ingest_for(&app);
    let blocker = app.files.path().join("not-a-directory");
    std::fs::write(&blocker, b"x").unwrap();
    ingest.attachments.dir = blocker;
    let err = ingest
        .ingest("support", 7, fixture("attachments"))
        .await
        .unwrap_err();
    assert!(err.contains("saving attachment"), "{err}");
    assert!(open_issues(&app).await.is_empty(), "nothing half-stored");

    ingest.attachments.dir = app.files.path().to_path_buf();
    ingest
        .ingest("support", 7, fixture("attachments"))
        .await
        .unwrap();
    let issues = open_issues(&app).await;
    assert_eq!(issues.len(), 1);
    let issue = issues[0]["id"].as_i64().unwrap();
    let files = app
        .get(
            &format!("/api/issues/{issue}/attachments"),
            &app.admin_token,
        )
        .await;
    let stored: Vec<Value> = files.body["images"]
        .as_array()
        .unwrap()
        .iter()
        .chain(files.body["documents"].as_array().unwrap())
        .cloned()
        .collect();
    assert!(stored.len() >= 2, "{}", files.text);
    for f in &stored {
        let id = f["id"].as_i64().unwrap();
        let r = app
            .get(&format!("/api/attachments/{id}"), &app.admin_token)
            .await;
        assert_eq!(r.status, StatusCode::OK, "attachment {id}: {}", r.text);
    }
    app.stop().await;
}

both_backends!(
    emails_open_thread_and_attach,
    auto_replies_and_bounces_never_open_issues,
    an_unsaveable_attachment_keeps_the_mail_for_later
);
