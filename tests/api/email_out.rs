//! Outbound email against a real SMTP server on loopback: notification
//! emails (headers, link, coalescing, preferences, retry, visible failure)
//! and replies on email issues.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard::config::{Dur, Security};

use crate::helpers::Backend;
use crate::smtp_sink::SmtpSink;
use crate::spawn::{PUBLIC_URL, TestApp, spawn_app_with};

pub async fn app_with_smtp(b: Backend, sink: &SmtpSink) -> TestApp {
    let port = sink.port;
    spawn_app_with(b, move |c| {
        c.smtp.host = "127.0.0.1".into();
        c.smtp.port = Some(port);
        c.smtp.security = Security::Plain;
        c.smtp.from = "Switchboard <noreply@sb.example.test>".into();
        c.notifications.email_coalesce = Dur::parse("1s").unwrap();
    })
    .await
}

async fn notification_emails_are_automated_and_link_the_issue(b: Backend) {
    let sink = SmtpSink::start();
    let app = app_with_smtp(b, &sink).await;
    // Admins get email for new issues by default (SPEC §5).
    let issue = app
        .sms_issue("SMe001", "+15550100151", "My router blinks red")
        .await;
    let got = sink.wait_for(1, 10).await;
    let mail = &got[0];
    assert_eq!(mail.rcpt_tos, vec!["admin@localhost"]);
    assert_eq!(mail.mail_from, "noreply@sb.example.test");
    assert_eq!(
        mail.header("Subject").unwrap(),
        format!("[#{issue}] New SMS from +15550100151")
    );
    assert_eq!(mail.header("Auto-Submitted").unwrap(), "auto-generated");
    assert_eq!(mail.header("X-Auto-Response-Suppress").unwrap(), "All");
    assert_eq!(
        mail.header("List-Unsubscribe").unwrap(),
        format!("<{PUBLIC_URL}/api/me/preferences>")
    );
    assert!(
        mail.body()
            .contains(&format!("{PUBLIC_URL}/issues/{issue}")),
        "{}",
        mail.raw
    );
    assert!(mail.body().contains("My router blinks red"));
    // Recorded as sent right after the server took it (not before: the
    // sink may see the mail a moment before the row is updated).
    app.eventually(5, "the email to be recorded as sent", || async {
        app.get("/api/notifications", &app.admin_token).await.body["notifications"][0]["email"]
            ["status"]
            == "sent"
    })
    .await;

    // Switching the cell off stops it.
    let r = app
        .request(
            Method::PUT,
            "/api/me/preferences",
            Some(&app.admin_token),
            Some(json!({"issue_opened": {"email": false}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    app.sms_issue("SMe002", "+15550100152", "Another one").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        sink.received().len(),
        1,
        "no email after the cell was switched off"
    );
    app.stop().await;
}

async fn quick_messages_coalesce_into_one_email(b: Backend) {
    let sink = SmtpSink::start();
    let app = app_with_smtp(b, &sink).await;
    let r = app
        .request(
            Method::PUT,
            "/api/me/preferences",
            Some(&app.admin_token),
            Some(json!({"issue_opened": {"email": false}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let (agent_id, _) = app.add_staff("Agent Coalesce", "agent").await;
    let issue = app.sms_issue("SMe010", "+15550100153", "First").await;
    let r = app
        .post(
            &format!("/api/issues/{issue}/assign"),
            &app.admin_token,
            json!({"assignee_id": agent_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // issue_assigned (email on by default) and five replies, all quickly.
    for i in 0..5 {
        assert_eq!(
            app.sms(
                &format!("SMe01{i}x"),
                "+15550100153",
                &format!("update {i}")
            )
            .await
            .status,
            StatusCode::OK
        );
    }
    let got = sink.wait_for(1, 10).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let got_after = sink.received();
    assert_eq!(got_after.len(), got.len());
    let to_agent: Vec<_> = got_after
        .iter()
        .filter(|m| m.rcpt_tos == vec!["agent.coalesce@example.test"])
        .collect();
    assert_eq!(to_agent.len(), 1, "one email for the burst: {got_after:?}");
    let body = to_agent[0].body();
    for i in 0..5 {
        assert!(body.contains(&format!("update {i}")), "{body}");
    }
    assert!(to_agent[0].header("Subject").unwrap().contains("more"));
    app.stop().await;
}

async fn smtp_down_is_retried_and_refusals_are_visible(b: Backend) {
    let mut sink = SmtpSink::start();
    let app = app_with_smtp(b, &sink).await;
    sink.down();
    let issue = app
        .sms_issue("SMe020", "+15550100154", "Hello while mail is down")
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let feed = app.get("/api/notifications", &app.admin_token).await;
    assert_eq!(feed.body["notifications"][0]["email"]["status"], "pending");
    assert!(
        feed.body["notifications"][0]["email"]["error"].is_string(),
        "{}",
        feed.text
    );
    let ready = app.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.body["checks"]["smtp"]["ok"], false);
    assert_eq!(ready.status, StatusCode::OK);
    sink.up();
    let got = sink.wait_for(1, 15).await;
    assert!(
        got[0]
            .header("Subject")
            .unwrap()
            .starts_with(&format!("[#{issue}]"))
    );
    app.eventually(5, "the email to be recorded as sent", || async {
        app.get("/api/notifications", &app.admin_token).await.body["notifications"][0]["email"]["status"] == "sent"
    })
    .await;

    // A recipient the server refuses for good: failed, with the reason.
    let r = app
        .post(
            "/api/staff",
            &app.admin_token,
            json!({"email": "reject-me@example.test", "name": "Rejected", "role": "admin"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let token = r.body["token"].as_str().unwrap().to_string();
    app.sms_issue("SMe021", "+15550100155", "Anyone?").await;
    app.eventually(10, "the refused email to be marked failed", || async {
        let f = app.get("/api/notifications", &token).await;
        f.body["notifications"][0]["email"]["status"] == "failed"
    })
    .await;
    let f = app.get("/api/notifications", &token).await;
    assert!(
        f.body["notifications"][0]["email"]["error"]
            .as_str()
            .unwrap()
            .contains("550"),
        "{}",
        f.text
    );
    app.stop().await;
}

async fn email_tickets_and_replies_thread(b: Backend) {
    let sink = SmtpSink::start();
    let app = app_with_smtp(b, &sink).await;
    let r = app
        .request(
            Method::PUT,
            "/api/me/preferences",
            Some(&app.admin_token),
            Some(json!({"issue_opened": {"email": false}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .post("/api/issues", &app.admin_token, json!({"contact": "Jane.Doe@Example.com", "subject": "Your order", "body": "It shipped today."}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let issue = r.body["id"].as_i64().unwrap();
    assert_eq!(r.body["channel"], "email");
    let got = sink.wait_for(1, 10).await;
    let first = &got[0];
    assert_eq!(first.rcpt_tos, vec!["jane.doe@example.com"]);
    assert_eq!(
        first.header("Subject").unwrap(),
        format!("Your order [#{issue}]")
    );
    assert!(
        first.header("Auto-Submitted").is_none(),
        "human mail is not automatic"
    );
    let mid = first.header("Message-ID").unwrap();
    assert!(mid.starts_with(&format!("<i{issue}.m")), "{mid}");

    let r = app
        .post(
            &format!("/api/issues/{issue}/replies"),
            &app.admin_token,
            json!({"body": "Tracking: 1Z999"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let got = sink.wait_for(2, 10).await;
    assert_eq!(
        got[1].header("Subject").unwrap(),
        format!("Re: Your order [#{issue}]")
    );
    // The replies show as sent, with our Message-ID stored (recorded right
    // after the server accepted them).
    app.eventually(10, "both replies to be recorded as sent", || async {
        let msgs = app
            .get(&format!("/api/issues/{issue}/messages"), &app.admin_token)
            .await;
        msgs.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["kind"] == "reply" && m["delivery"]["status"] == "sent")
            .count()
            == 2
    })
    .await;
    let msgs = app
        .get(&format!("/api/issues/{issue}/messages"), &app.admin_token)
        .await;
    let replies: Vec<&Value> = msgs.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "reply")
        .collect();
    assert_eq!(replies.len(), 2);
    assert!(replies.iter().all(|m| m["delivery"]["status"] == "sent"));
    assert_eq!(
        format!("<{}>", replies[0]["external_id"].as_str().unwrap()),
        mid
    );
    app.stop().await;
}

/// The digest job (SPEC §6): each active person gets their assigned and the
/// unassigned issues, through the outbox and real SMTP; inactive staff and
/// people with nothing to read get nothing.
async fn digest_lists_each_persons_open_issues(b: Backend) {
    let sink = SmtpSink::start();
    let port = sink.port;
    let app = spawn_app_with(b, move |c| {
        c.smtp.host = "127.0.0.1".into();
        c.smtp.port = Some(port);
        c.smtp.security = Security::Plain;
        c.smtp.from = "Switchboard <noreply@sb.example.test>".into();
        c.digest.schedule = Some(switchboard::config::Schedule::parse("*/2 * * * * *").unwrap());
    })
    .await;
    let (agent_id, agent) = app.add_staff("Agent Digest", "agent").await;
    let (gone_id, _) = app.add_staff("Agent Gone", "agent").await;
    let r = app
        .request(
            Method::PATCH,
            &format!("/api/staff/{gone_id}"),
            Some(&app.admin_token),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mine = app
        .sms_issue("SMd001", "+15550100171", "Line 1\nmy modem")
        .await;
    assert_eq!(
        app.post(&format!("/api/issues/{mine}/take"), &agent, json!({}))
            .await
            .status,
        StatusCode::OK
    );
    let open = app
        .sms_issue("SMd002", "+15550100172", "Nobody has this")
        .await;
    let closed = app
        .sms_issue("SMd003", "+15550100173", "Solved already")
        .await;
    assert_eq!(
        app.post(&format!("/api/issues/{closed}/close"), &agent, json!({}))
            .await
            .status,
        StatusCode::OK
    );
    let digests_to = |to: &str| {
        sink.received()
            .into_iter()
            .filter(|m| {
                m.rcpt_tos == vec![to.to_string()]
                    && m.header("Subject")
                        .is_some_and(|s| s.starts_with("Switchboard digest"))
            })
            .collect::<Vec<_>>()
    };
    let wanted_agent = "Switchboard digest: 1 assigned to you, 1 unassigned";
    app.eventually(15, "a full digest for the agent and the admin", || async {
        digests_to("agent.digest@example.test")
            .iter()
            .any(|m| m.header("Subject").as_deref() == Some(wanted_agent))
            && digests_to("admin@localhost").iter().any(|m| {
                m.header("Subject").as_deref()
                    == Some("Switchboard digest: 0 assigned to you, 1 unassigned")
            })
    })
    .await;
    let mail = digests_to("agent.digest@example.test")
        .into_iter()
        .find(|m| m.header("Subject").as_deref() == Some(wanted_agent))
        .unwrap();
    assert_eq!(mail.mail_from, "noreply@sb.example.test");
    assert_eq!(mail.header("Auto-Submitted").unwrap(), "auto-generated");
    let body = mail.body().replace("\r\n", "\n");
    assert!(body.contains("Hello Agent Digest"), "{body}");
    assert!(body.contains(&format!("  #{mine} Line 1 my modem (+15550100171, last message 0m ago)\n    {PUBLIC_URL}/issues/{mine}\n")), "{body}");
    assert!(body.contains(&format!("#{open} Nobody has this")), "{body}");
    assert!(
        !body.contains(&format!("#{closed} ")),
        "closed issues are not listed: {body}"
    );
    let _ = agent_id;

    // The inactive person never gets one, however many ticks pass.
    let before = sink.received().len();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert!(
        sink.received().len() > before,
        "the digest keeps its schedule"
    );
    assert!(digests_to("agent.gone@example.test").is_empty());
    let ready = app.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        ready.body["checks"]["job:digest"]["ok"], true,
        "{}",
        ready.text
    );
    app.stop().await;
}

both_backends!(
    notification_emails_are_automated_and_link_the_issue,
    quick_messages_coalesce_into_one_email,
    smtp_down_is_retried_and_refusals_are_visible,
    email_tickets_and_replies_thread,
    digest_lists_each_persons_open_issues,
);
