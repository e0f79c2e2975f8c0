//! What issue 12 changed behind the list, seen through the API: the stored
//! counters, previews and message counts stay in step with every kind of
//! write, and each kind of search (phone in any formatting, email address
//! or its beginning, customer name, subject and body words, `#id`) finds
//! what it should on both backends.

use chrono::Utc;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::Backend;
use crate::issues_api::{ids, list as list_as};
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

async fn search_finds_each_kind(b: Backend) {
    let app = spawn_app(b).await;
    let printer = app
        .sms_issue(&sid(21), "+15550101234", "My printer jams")
        .await;
    let refund = app
        .sms_issue(&sid(22), "+442079460123", "Refund for order")
        .await;
    let other = app.sms_issue(&sid(23), "+15550109999", "Hello").await;
    let carol = app
        .get(&format!("/api/issues/{other}"), &app.admin_token)
        .await
        .body["customer"]["id"]
        .as_i64()
        .expect("customer id");
    app.db
        .exec(&format!(
            "UPDATE customers SET name = 'Carol Zebrowski' WHERE id = {carol}"
        ))
        .await;
    app.db
        .exec_at(
            "INSERT INTO contacts (customer_id, kind, value, opted_out, created_at)
             VALUES ($2, 'email', 'carol.z@example.com', FALSE, $1)",
            Utc::now(),
            carol,
        )
        .await;
    act(
        &app,
        other,
        "comments",
        Some(json!({ "body": "Customer mentioned the warranty card" })),
    )
    .await;

    let find = |q: &'static str| {
        let app = &app;
        async move { ids(&list(app, &format!("?q={}", urlencode(q))).await) }
    };
    // Phone, in any common formatting, or its last digits.
    for q in [
        "+1 555-010-1234",
        "(555) 010-1234",
        "5550101234",
        "+15550101234",
        "555.010.1234",
        "0101234",
    ] {
        assert_eq!(find(q).await, vec![printer], "{q}");
    }
    assert_eq!(find("+44 20 7946 0123").await, vec![refund]);
    assert_eq!(find("020 7946 0123").await, vec![refund], "national format");
    // Email: exact, or the beginning of the address, any case.
    for q in [
        "carol.z@example.com",
        "Carol.Z@Example.com",
        "carol.z@",
        "carol.z",
    ] {
        assert_eq!(find(q).await, vec![other], "{q}");
    }
    assert_eq!(find("carol.y@example.com").await, Vec::<i64>::new());
    // And by the words of the address, such as its domain.
    assert_eq!(find("example.com").await, vec![other]);
    // Customer name, subject and body words (a word's beginning is enough).
    assert_eq!(find("zebrowski").await, vec![other]);
    assert_eq!(find("Zebrow").await, vec![other]);
    assert_eq!(find("PRINTER").await, vec![printer]);
    assert_eq!(find("printer jams").await, vec![printer]);
    assert_eq!(find("refund").await, vec![refund]);
    assert_eq!(find("warranty").await, vec![other]);
    assert_eq!(find("warranty card").await, vec![other]);
    assert_eq!(find("no-such-word").await, Vec::<i64>::new());
    act(&app, printer, "take", None).await;
    // #id and id.
    assert_eq!(find_id(&app, &format!("%23{refund}")).await, vec![refund]);
    assert_eq!(find_id(&app, &refund.to_string()).await, vec![refund]);
    // Counts honour the search.
    let l = list(&app, "?q=printer").await;
    assert_eq!(
        l["counts"],
        json!({"unassigned": 0, "assigned": 1, "closed": 0})
    );
    app.stop().await;
}

/// Unread as it was defined before migration 0012, asked of the messages
/// themselves: some message newer than the staff member's read marker that
/// they did not write. The oracle for the ids 0012 keeps on each issue.
fn unread_oracle(staff: i64, issues: &str) -> String {
    format!(
        "SELECT COUNT(*) FROM issues i WHERE {issues} AND EXISTS (
           SELECT 1 FROM messages m WHERE m.issue_id = i.id
             AND NOT (m.author_type = 'staff' AND m.author_id = {staff})
             AND m.id > COALESCE((SELECT r.read_up_to FROM issue_reads r
                                  WHERE r.issue_id = i.id AND r.staff_id = {staff}), 0))"
    )
}

/// The badge of `/api/me` and each issue's `unread` agree with the oracle
/// for every staff member.
async fn unread_agrees(app: &TestApp, staff: &[(i64, String)], issues: &[i64], step: &str) {
    for (who, token) in staff {
        let me = app.get("/api/me", token).await;
        let want = app
            .db
            .count(&unread_oracle(*who, "i.status <> 'closed'"))
            .await;
        assert_eq!(
            me.body["unread_issues"], want,
            "{step}: badge of staff {who}"
        );
        for id in issues {
            let one = app.get(&format!("/api/issues/{id}"), token).await;
            let want = app
                .db
                .count(&unread_oracle(*who, &format!("i.id = {id}")))
                .await
                == 1;
            assert_eq!(
                one.body["unread"], want,
                "{step}: issue {id} for staff {who}"
            );
            let listed = list_as(
                app,
                &format!("?customer={}", one.body["customer"]["id"]),
                token,
            )
            .await;
            let row = listed["issues"]
                .as_array()
                .and_then(|l| l.iter().find(|i| i["id"] == *id).cloned());
            if let Some(row) = row {
                assert_eq!(
                    row["unread"], want,
                    "{step}: listed issue {id} for staff {who}"
                );
            }
        }
    }
}

/// `unread` and the badge (kept on the issue by migration 0012) through
/// runs of one staff member's own messages, someone else's, events,
/// deleted comments and closing.
async fn unread_follows_authors(b: Backend) {
    let app = spawn_app(b).await;
    let (a, ta) = app.add_staff("Agent A", "agent").await;
    let (bb, tb) = app.add_staff("Agent B", "agent").await;
    let admin: i64 = app.get("/api/me", &app.admin_token).await.body["id"]
        .as_i64()
        .expect("admin id");
    let staff = [
        (admin, app.admin_token.clone()),
        (a, ta.clone()),
        (bb, tb.clone()),
    ];
    let mut issues = Vec::new();
    for n in 0..3 {
        issues.push(
            app.sms_issue(&sid(40 + n), &format!("+1555010040{n}"), "Hello")
                .await,
        );
    }
    let (i1, i2, i3) = (issues[0], issues[1], issues[2]);
    let post = |token: &str, path: String, body: Option<Value>| {
        let token = token.to_string();
        let app = &app;
        async move {
            let r = app.request(Method::POST, &path, Some(&token), body).await;
            assert!(r.status.is_success(), "{path}: {} {}", r.status, r.text);
            r.body
        }
    };
    let comment = |token: &str, id: i64, text: &str| {
        post(
            token,
            format!("/api/issues/{id}/comments"),
            Some(json!({ "body": text })),
        )
    };
    let read = |token: &str, id: i64| post(token, format!("/api/issues/{id}/read"), None);
    unread_agrees(&app, &staff, &issues, "new issues").await;

    read(&ta, i1).await;
    comment(&ta, i1, "mine").await;
    comment(&ta, i1, "mine again").await;
    unread_agrees(&app, &staff, &issues, "own comments in a row").await;
    comment(&tb, i1, "B's").await;
    comment(&ta, i1, "A after B").await;
    unread_agrees(&app, &staff, &issues, "someone else's, then mine").await;
    read(&ta, i1).await;
    read(&tb, i1).await;
    unread_agrees(&app, &staff, &issues, "both read").await;

    post(&ta, format!("/api/issues/{i2}/take"), None).await;
    unread_agrees(&app, &staff, &issues, "an event by A").await;
    read(&ta, i2).await;
    read(&tb, i2).await;
    comment(&ta, i2, "note").await;
    unread_agrees(&app, &staff, &issues, "A's comment after both read").await;

    read(&ta, i3).await;
    let c = comment(&tb, i3, "to delete").await;
    unread_agrees(&app, &staff, &issues, "B's comment").await;
    let r = app
        .request(
            Method::DELETE,
            &format!("/api/messages/{}", c["id"]),
            Some(&tb),
            None,
        )
        .await;
    assert!(r.status.is_success(), "delete: {}", r.text);
    unread_agrees(&app, &staff, &issues, "B's comment deleted").await;
    read(&tb, i3).await;
    comment(&tb, i3, "B again").await;
    let c = comment(&ta, i3, "A's to delete").await;
    let r = app
        .request(
            Method::DELETE,
            &format!("/api/messages/{}", c["id"]),
            Some(&ta),
            None,
        )
        .await;
    assert!(r.status.is_success(), "delete: {}", r.text);
    unread_agrees(&app, &staff, &issues, "A's comment after B's deleted").await;

    app.sms(&sid(50), "+15550100400", "Anyone?").await;
    post(&ta, format!("/api/issues/{i2}/close"), None).await;
    unread_agrees(&app, &staff, &issues, "a customer message and a close").await;
    app.stop().await;
}

/// A Twilio message sid, unique within a test.
fn sid(n: u32) -> String {
    format!("SM{n:032x}")
}

async fn find_id(app: &TestApp, q: &str) -> Vec<i64> {
    ids(&list(app, &format!("?q={q}")).await)
}

/// Percent-encodes a query value (only what these tests use).
fn urlencode(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '.' | '_' => c.to_string(),
            _ => format!("%{:02X}", c as u32),
        })
        .collect()
}

both_backends!(
    counters_follow_every_change,
    previews_and_counts_follow_comments,
    search_finds_each_kind,
    unread_follows_authors,
);
