//! Scheduled jobs: leases (one run per tick across instances), escalation
//! and auto-close end to end, and their state in /readyz.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use switchboard::config::{Dur, Schedule};

use crate::helpers::{Backend, test_store_with};
use crate::spawn::{TestApp, spawn_app_with};

async fn leases_give_each_tick_to_one_instance(b: Backend) {
    let db = test_store_with(b, 10).await;
    let lease = Duration::from_secs(60);
    let t1 = switchboard::store::now();
    let t2 = t1 + chrono::Duration::seconds(5);
    // Ten instances race for one tick: exactly one wins.
    let claims = (0..10).map(|i| {
        let store = db.store.clone();
        tokio::spawn(async move {
            store
                .claim_job("escalation", t1, &format!("instance-{i}"), lease)
                .await
                .unwrap()
        })
    });
    let won: Vec<bool> = futures::future::join_all(claims)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    // The same tick again: no.
    assert!(
        !db.store
            .claim_job("escalation", t1, "late", lease)
            .await
            .unwrap()
    );
    // The next tick while the first run still holds the lease: no overlap.
    assert!(
        !db.store
            .claim_job("escalation", t2, "b", lease)
            .await
            .unwrap()
    );
    db.store.finish_job("escalation", None).await.unwrap();
    assert!(
        db.store
            .claim_job("escalation", t2, "b", lease)
            .await
            .unwrap()
    );
    db.store
        .finish_job("escalation", Some("boom"))
        .await
        .unwrap();
    // Other jobs are independent.
    assert!(
        db.store
            .claim_job("auto_close", t1, "a", lease)
            .await
            .unwrap()
    );
    let jobs = db.store.jobs().await.unwrap();
    let esc = jobs.iter().find(|j| j.name == "escalation").unwrap();
    assert_eq!((esc.runs, esc.failures), (2, 1));
    assert_eq!(esc.last_error.as_deref(), Some("boom"));
    db.cleanup().await;
}

fn every_second() -> Schedule {
    Schedule::parse("* * * * * *").unwrap()
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

async fn escalation_tells_admins_once(b: Backend) {
    let app = spawn_app_with(b, |c| {
        c.escalation.after = Dur::parse("1s").unwrap();
        c.escalation.schedule = every_second();
    })
    .await;
    let (_, agent) = app.add_staff("Agent A", "agent").await;
    let issue = app
        .sms_issue("SMj001", "+15550100141", "Nobody is answering")
        .await;
    // Another issue that is taken at once is never escalated.
    let taken = app.sms_issue("SMj002", "+15550100142", "Me too").await;
    assert_eq!(
        app.post(
            &format!("/api/issues/{taken}/take"),
            &agent,
            serde_json::json!({})
        )
        .await
        .status,
        StatusCode::OK
    );

    app.eventually(10, "the issue to be escalated", || async {
        timeline(&app, issue)
            .await
            .iter()
            .any(|m| m["event"]["type"] == "escalated")
    })
    .await;
    // Several more ticks: still once.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let escalations = timeline(&app, issue)
        .await
        .iter()
        .filter(|m| m["event"]["type"] == "escalated")
        .count();
    assert_eq!(escalations, 1);
    let event = timeline(&app, issue)
        .await
        .into_iter()
        .find(|m| m["event"]["type"] == "escalated")
        .unwrap();
    assert_eq!(event["event"]["actor"], Value::Null);
    assert_eq!(event["author"]["type"], "system");
    assert!(
        !timeline(&app, taken)
            .await
            .iter()
            .any(|m| m["event"]["type"] == "escalated")
    );

    // Admins are told; agents are not.
    let admin_feed = app.get("/api/notifications", &app.admin_token).await;
    let escalated: Vec<&Value> = admin_feed.body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "issue_escalated")
        .collect();
    assert_eq!(escalated.len(), 1);
    assert_eq!(escalated[0]["issue_id"], issue);
    let agent_feed = app.get("/api/notifications", &agent).await;
    assert!(
        !agent_feed.body["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "issue_escalated")
    );

    let ready = app.request(Method::GET, "/readyz", None, None).await;
    let job = &ready.body["checks"]["job:escalation"];
    assert_eq!(job["ok"], true, "{}", ready.text);
    assert!(
        job["last_success"].is_string() && job["next_run"].is_string(),
        "{}",
        ready.text
    );
    app.stop().await;
}

async fn auto_close_closes_idle_issues(b: Backend) {
    let app = spawn_app_with(b, |c| {
        c.auto_close.after = Some(Dur::parse("2s").unwrap());
        c.auto_close.schedule = every_second();
    })
    .await;
    let issue = app.sms_issue("SMj010", "+15550100143", "Hello").await;
    app.eventually(10, "the idle issue to be closed", || async {
        app.get(&format!("/api/issues/{issue}"), &app.admin_token)
            .await
            .body["status"]
            == "closed"
    })
    .await;
    let detail = app
        .get(&format!("/api/issues/{issue}"), &app.admin_token)
        .await
        .body;
    assert_eq!(detail["resolution"], "closed");
    assert_eq!(detail["closed_by"], Value::Null);
    assert!(detail["closed_at"].is_string());
    assert!(
        timeline(&app, issue)
            .await
            .iter()
            .any(|m| m["event"]["type"] == "auto_closed")
    );
    app.stop().await;
}

/// Housekeeping deletes notifications older than `notifications.retention`,
/// read or not, and leaves newer ones.
async fn old_notifications_are_purged(b: Backend) {
    let app = spawn_app_with(b, |_| {}).await;
    app.sms_issue("SMj101", "+15550100161", "Hello there").await;
    let count = || async {
        app.get("/api/notifications", &app.admin_token).await.body["notifications"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count().await, 1);
    let now = switchboard::store::now();
    let month_ago = now - chrono::Duration::days(30);
    // Newer than the cutoff: kept.
    let n = app
        .db
        .store
        .purge_finished(now - chrono::Duration::hours(1), month_ago)
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(count().await, 1);
    // Older than the cutoff (unread too): gone, and the badge with it.
    let n = app
        .db
        .store
        .purge_finished(now + chrono::Duration::seconds(1), month_ago)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(count().await, 0);
    let me = app.get("/api/me", &app.admin_token).await;
    assert_eq!(me.body["unread_notifications"], 0, "{}", me.text);
    app.stop().await;
}

/// A reload (SIGHUP) applies new schedules and rotated Twilio credentials
/// to the running daemon.
async fn reload_applies_schedules_and_credentials(b: Backend) {
    let app = spawn_app_with(b, |c| {
        c.escalation.after = Dur::parse("1s").unwrap();
        // 1 January only: not during this test.
        c.escalation.schedule = Schedule::parse("0 0 1 1 *").unwrap();
    })
    .await;
    let issue = app.sms_issue("SMj201", "+15550100191", "Anyone?").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let escalated = |msgs: Vec<Value>| msgs.iter().any(|m| m["event"]["type"] == "escalated");
    assert!(!escalated(timeline(&app, issue).await));

    let mut new = app.config.clone();
    new.escalation.schedule = every_second();
    new.twilio.auth_token = Some(switchboard::config::Secret::new("rotated-token"));
    assert!(app.reload.reload(new).await);
    app.eventually(10, "the new schedule to escalate", || async {
        escalated(timeline(&app, issue).await)
    })
    .await;

    // Webhooks are now checked against the new token, not the old one.
    let params = [
        ("MessageSid", "SMj202"),
        ("AccountSid", crate::spawn::ACCOUNT_SID),
        ("From", "+15550100192"),
        ("To", crate::spawn::OUR_NUMBER),
        ("Body", "after the rotation"),
    ];
    let old = app.signed_webhook("/webhooks/twilio/sms", &params).await;
    assert_eq!(old.status, StatusCode::FORBIDDEN, "{}", old.text);
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let sig = switchboard::channels::sms::twilio::compute_signature(
        "rotated-token",
        &format!("{}/webhooks/twilio/sms", crate::spawn::PUBLIC_URL),
        &owned,
    );
    let new = app
        .webhook_with_signature("/webhooks/twilio/sms", &params, Some(&sig))
        .await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.text);
    app.stop().await;
}

/// Mailbox leases (SPEC §7): one holder at a time, renewable by its holder,
/// taken over only when it runs out or is released.
async fn mailbox_leases_have_one_holder(b: Backend) {
    let db = test_store_with(b, 4).await;
    let ttl = Duration::from_secs(60);
    assert!(db.store.claim_mailbox("support", "a", ttl).await.unwrap());
    assert!(!db.store.claim_mailbox("support", "b", ttl).await.unwrap());
    assert!(
        db.store.claim_mailbox("support", "a", ttl).await.unwrap(),
        "renewal"
    );
    assert!(
        db.store.claim_mailbox("sales", "b", ttl).await.unwrap(),
        "per mailbox"
    );
    // Released: the other takes it at once.
    db.store.release_mailbox("support", "a").await.unwrap();
    assert!(db.store.claim_mailbox("support", "b", ttl).await.unwrap());
    // A release by someone who no longer holds it changes nothing.
    db.store.release_mailbox("support", "a").await.unwrap();
    assert!(!db.store.claim_mailbox("support", "a", ttl).await.unwrap());
    // A holder that stops renewing loses it when the lease runs out.
    assert!(
        db.store
            .claim_mailbox("sales", "b", Duration::ZERO)
            .await
            .unwrap()
    );
    assert!(db.store.claim_mailbox("sales", "c", ttl).await.unwrap());
    db.cleanup().await;
}

/// Every job, driven by a manual clock through 31 days of schedule in a
/// few seconds: escalation not before `after` and then once, the digest
/// queued once per run, auto-close after its idle time, raw-mail retention
/// and notification housekeeping after theirs; missed ticks run once.
async fn every_job_follows_a_manual_clock(b: Backend) {
    use switchboard::schedule::{Clock, Job, ManualClock, Scheduler, Task};
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    // The app's own (system-clock) escalation stays out of the way.
    let app = spawn_app_with(b, |c| {
        c.escalation.schedule = Schedule::parse("0 0 1 1 *").unwrap();
    })
    .await;
    let sms_issue = app.sms_issue("SMj301", "+15550100301", "Help?").await;
    crate::email_in::ingest_for(&app)
        .ingest("support", 1, crate::email_in::fixture("plain"))
        .await
        .unwrap();
    let db = &app.db;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM messages WHERE raw IS NOT NULL")
            .await,
        1
    );
    let manual = ManualClock::new(switchboard::store::now());
    let health = switchboard::channels::health::ChannelHealth::default();
    let job = |name, schedule: &str, task| Job {
        name,
        schedule: Schedule::parse(schedule).unwrap(),
        task,
    };
    let dur = |d: &str| Dur::parse(d).unwrap();
    let scheduler = Scheduler {
        store: db.store.clone(),
        jobs: vec![
            job(
                "escalation",
                "*/5 * * * *",
                Task::Escalation { after: dur("30m") },
            ),
            job(
                "auto_close",
                "0 * * * *",
                Task::AutoClose { after: dur("2d") },
            ),
            job(
                "digest",
                "0 8 * * *",
                Task::Digest {
                    public_url: crate::spawn::PUBLIC_URL.into(),
                },
            ),
            job(
                "retention",
                "30 3 * * *",
                Task::Retention {
                    raw_mail: dur("30d"),
                },
            ),
            job(
                "housekeeping",
                "17 * * * *",
                Task::Housekeeping {
                    notifications: dur("30d"),
                    rejected: dur("30d"),
                },
            ),
        ],
        instance: "manual-clock".into(),
        health: health.clone(),
        metrics: switchboard::metrics::Metrics::install(),
        clock: Clock::Manual(manual.clone()),
    };
    let tracker = tokio_util::task::TaskTracker::new();
    let stop = tokio_util::sync::CancellationToken::new();
    scheduler.spawn(&tracker, stop.clone());
    // Each job has read the clock and knows its next run before it moves.
    app.eventually(10, "every job to be scheduled", || async {
        let snapshot = health.snapshot();
        [
            "escalation",
            "auto_close",
            "digest",
            "retention",
            "housekeeping",
        ]
        .iter()
        .all(|j| {
            snapshot
                .get(&format!("job:{j}"))
                .is_some_and(|s| s.next_run.is_some())
        })
    })
    .await;
    let runs = |name: &'static str| {
        let store = db.store.clone();
        async move {
            store
                .jobs()
                .await
                .unwrap()
                .iter()
                .find(|j| j.name == name)
                .map(|j| j.runs)
                .unwrap_or(0)
        }
    };
    let escalations = || async {
        timeline(&app, sms_issue)
            .await
            .iter()
            .filter(|m| m["event"]["type"] == "escalated")
            .count()
    };
    let hour = Duration::from_secs(3600);

    // 10 minutes: escalation ran, nothing is 30 minutes old yet.
    manual.advance(Duration::from_secs(600));
    app.eventually(10, "escalation to run", || async {
        runs("escalation").await >= 1
    })
    .await;
    assert_eq!(escalations().await, 0);
    // 35 minutes: escalated, once.
    manual.advance(Duration::from_secs(25 * 60));
    app.eventually(10, "the issue to be escalated", || async {
        escalations().await == 1
    })
    .await;
    // A day: one digest run (missed ticks run once), one digest per person
    // with something to read; the issues are still open.
    let before = runs("escalation").await;
    manual.advance(24 * hour);
    app.eventually(10, "the digest to run", || async {
        runs("digest").await == 1
    })
    .await;
    app.eventually(10, "escalation to run again", || async {
        runs("escalation").await > before
    })
    .await;
    assert_eq!(escalations().await, 1, "escalated once, however many ticks");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM outbox WHERE kind = 'digest'")
            .await,
        1,
        "one person (the admin) has unassigned issues to read about"
    );
    assert_eq!(runs("digest").await, 1, "a day of missed ticks ran once");
    let open = app.get("/api/issues", &app.admin_token).await;
    assert_eq!(open.body["issues"].as_array().unwrap().len(), 2);
    // Three days: idle for more than 2 days, closed by the system.
    manual.advance(2 * 24 * hour);
    app.eventually(10, "idle issues to be closed", || async {
        app.get("/api/issues", &app.admin_token).await.body["issues"]
            .as_array()
            .unwrap()
            .is_empty()
    })
    .await;
    assert!(db.count("SELECT COUNT(*) FROM notifications").await > 0);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM messages WHERE raw IS NOT NULL")
            .await,
        1,
        "raw mail is kept for 30 days"
    );
    // 31 days: raw mail purged, old notifications gone.
    manual.advance(28 * 24 * hour);
    app.eventually(10, "raw mail to be purged", || async {
        db.count("SELECT COUNT(*) FROM messages WHERE raw IS NOT NULL")
            .await
            == 0
    })
    .await;
    app.eventually(10, "old notifications to be purged", || async {
        db.count("SELECT COUNT(*) FROM notifications").await == 0
    })
    .await;
    stop.cancel();
    tracker.close();
    tracker.wait().await;
    app.stop().await;
}

both_backends!(
    leases_give_each_tick_to_one_instance,
    escalation_tells_admins_once,
    auto_close_closes_idle_issues,
    old_notifications_are_purged,
    reload_applies_schedules_and_credentials,
    mailbox_leases_have_one_holder,
    every_job_follows_a_manual_clock
);
