//! SPEC §9 "Issue Tracker": the list page's tabs and counts, search, the
//! Staff filter, status words, unread badges, escaping of customer text,
//! Load more, the live summary and "Mark all read", on both backends.
//!
//! The page is read as HTML the way a browser gets it; each row is the
//! `<li … data-id="N">` inside `<ol id="issue-list">`.

use reqwest::StatusCode;
use reqwest::header::COOKIE;
use serde_json::{Value, json};

use crate::helpers::Backend;
use crate::spawn::{TestApp, spawn_app};
use crate::web_support::*;

both_backends!(
    tabs_show_their_issues_and_counts,
    search_finds_a_row_by_phone_name_or_id,
    staff_filter_shows_one_persons_issues,
    unread_badge_counts_messages_the_viewer_has_not_read,
    customer_text_is_escaped_in_rows,
    load_more_carries_a_cursor_to_the_next_rows,
    signed_out_visitors_are_sent_to_sign_in,
    take_it_is_offered_only_where_the_state_machine_allows,
    summary_gives_counts_and_unread_for_live_updates,
    mark_all_read_posts_with_csrf,
);

/// The ids of the rows on a tracker page, top to bottom.
fn row_ids(html: &str) -> Vec<i64> {
    let start = html.find("id=\"issue-list\"").expect("the issue list");
    let end = start + html[start..].find("</ol>").expect("end of the list");
    html[start..end]
        .split("<li class=\"row")
        .skip(1)
        .filter_map(|li| {
            let at = li.find("data-id=\"")? + 9;
            let len = li[at..].find('"')?;
            li[at..at + len].parse().ok()
        })
        .collect()
}

/// One row's HTML.
fn row_html(html: &str, id: i64) -> &str {
    let marker = format!("data-id=\"{id}\"");
    let at = html.find(&marker).unwrap_or_else(|| panic!("no row #{id}"));
    let end = at + html[at..].find("</li>").expect("end of row");
    &html[at..end]
}

/// The count after a tab's label, e.g. `Unassigned <span class="count">3`.
fn tab_count(html: &str, label: &str) -> i64 {
    let marker = format!(">{label} <span class=\"count\">");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no tab {label}"))
        + marker.len();
    let len = html[at..].find('<').expect("count ends");
    html[at..at + len].parse().expect("a number")
}

fn phone(n: u32) -> String {
    format!("+1555010{n:04}")
}

async fn act(app: &TestApp, token: &str, id: i64, action: &str) {
    let r = app
        .post(&format!("/api/issues/{id}/{action}"), token, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{action} #{id}: {}", r.text);
}

async fn admin_name(app: &TestApp) -> String {
    app.db
        .store
        .staff_by_email("admin@localhost")
        .await
        .unwrap()
        .unwrap()
        .name
}

async fn tabs_show_their_issues_and_counts(b: Backend) {
    let app = spawn_app(b).await;
    let cookie = admin_session(&app).await;
    let (_ann, ann_token) = app.add_staff("Ann", "agent").await;
    let open = app
        .sms_issue("SMT1", &phone(1), "my router is broken")
        .await;
    let mine = app.sms_issue("SMT2", &phone(2), "billing question").await;
    let anns = app.sms_issue("SMT3", &phone(3), "cannot log in").await;
    let closed = app
        .sms_issue("SMT4", &phone(4), "thanks, all good now")
        .await;
    act(&app, &app.admin_token, mine, "take").await;
    act(&app, &ann_token, anns, "take").await;
    act(&app, &ann_token, closed, "take").await;
    act(&app, &ann_token, closed, "resolve").await;

    let page = get_page(&app, &cookie, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(tab_count(&page.html, "Unassigned"), 1);
    assert_eq!(tab_count(&page.html, "Mine"), 1);
    assert_eq!(tab_count(&page.html, "Assigned"), 2);
    assert_eq!(tab_count(&page.html, "Closed"), 1);
    // The default tab is Unassigned, marked current, showing its issue in red.
    assert_eq!(row_ids(&page.html), vec![open]);
    assert!(page.html.contains("aria-current=\"page\">Unassigned"));
    let row = row_html(&page.html, open);
    assert!(row.contains("class=\"status status-unassigned\">Unassigned<"));
    assert!(row.contains(&format!("href=\"/issues/{open}\"")));
    assert!(row.contains(&format!("#{open}")));
    assert!(row.contains("my router is broken"), "subject and preview");
    assert!(row.contains(">sms<"), "channel");
    assert!(row.contains("<time datetime=\"") && row.contains("just now</time>"));

    let page = get_page(&app, &cookie, "/issues?tab=mine").await;
    assert_eq!(row_ids(&page.html), vec![mine]);
    let me = admin_name(&app).await;
    assert!(row_html(&page.html, mine).contains(&format!(
        "class=\"status status-assigned\">Assigned to {me}<"
    )));

    let page = get_page(&app, &cookie, "/issues?tab=assigned").await;
    assert_eq!(
        row_ids(&page.html),
        vec![anns, mine],
        "newest activity first"
    );
    assert!(row_html(&page.html, anns).contains(">Assigned to Ann<"));

    let page = get_page(&app, &cookie, "/issues?tab=closed").await;
    assert_eq!(row_ids(&page.html), vec![closed]);
    assert!(
        row_html(&page.html, closed).contains("class=\"status status-closed\">Resolved by Ann<")
    );
    // `/issues` is the same page as `/`.
    let same = get_page(&app, &cookie, "/issues").await;
    assert_eq!(row_ids(&same.html), vec![open]);
    app.stop().await;
}

async fn search_finds_a_row_by_phone_name_or_id(b: Backend) {
    let app = spawn_app(b).await;
    let cookie = admin_session(&app).await;
    let jane = app
        .sms_issue("SMS1", &phone(11), "where is my parcel")
        .await;
    let other = app.sms_issue("SMS2", &phone(12), "hello there").await;
    app.db
        .exec("UPDATE customers SET name = 'Jane Doe' WHERE id = (SELECT customer_id FROM issues WHERE id = 1)")
        .await;
    assert_eq!(jane, 1, "the first issue");
    act(&app, &app.admin_token, jane, "take").await;

    // By phone (part of it): a search without a tab shows open issues of
    // any status, so Jane's assigned issue is found from the default view.
    let page = get_page(&app, &cookie, "/?q=5550100011").await;
    assert_eq!(row_ids(&page.html), vec![jane]);
    assert!(
        page.html.contains("value=\"5550100011\""),
        "the box keeps the search"
    );
    // The counts honour the search.
    assert_eq!(tab_count(&page.html, "Assigned"), 1);
    assert_eq!(tab_count(&page.html, "Unassigned"), 0);
    // By name, any case.
    let page = get_page(&app, &cookie, "/issues?q=jane+doe").await;
    assert_eq!(row_ids(&page.html), vec![jane]);
    assert!(row_html(&page.html, jane).contains("Jane Doe"));
    // By #id.
    let page = get_page(&app, &cookie, &format!("/issues?q=%23{other}")).await;
    assert_eq!(row_ids(&page.html), vec![other]);
    // Nothing found.
    let page = get_page(&app, &cookie, "/issues?q=nobody+at+all").await;
    assert!(row_ids(&page.html).is_empty());
    assert!(page.html.contains("No issues here."));
    // The search box is labelled Search, and a tab link keeps the search.
    assert!(page.html.contains("<label for=\"search\">Search</label>"));
    assert!(
        page.html
            .contains("href=\"/issues?tab=closed&#38;q=nobody+at+all\""),
        "{}",
        page.html
    );
    app.stop().await;
}

async fn staff_filter_shows_one_persons_issues(b: Backend) {
    let app = spawn_app(b).await;
    let cookie = admin_session(&app).await;
    let (ann, ann_token) = app.add_staff("Ann", "agent").await;
    let (_bob, bob_token) = app.add_staff("Bob", "agent").await;
    let a = app.sms_issue("SMF1", &phone(21), "one").await;
    let bb = app.sms_issue("SMF2", &phone(22), "two").await;
    let free = app.sms_issue("SMF3", &phone(23), "three").await;
    act(&app, &ann_token, a, "take").await;
    act(&app, &bob_token, bb, "take").await;

    let page = get_page(&app, &cookie, "/").await;
    assert!(
        page.html
            .contains("<label for=\"staff-filter\">Staff</label>")
    );
    for option in [
        "<option value=\"\" selected>Anyone</option>",
        "<option value=\"none\">Unassigned</option>",
        &format!("<option value=\"{ann}\">Ann</option>"),
    ] {
        assert!(page.html.contains(option), "Staff select lacks {option}");
    }
    let page = get_page(&app, &cookie, &format!("/issues?staff={ann}")).await;
    assert_eq!(row_ids(&page.html), vec![a], "only Ann's issues");
    assert!(
        page.html
            .contains(&format!("<option value=\"{ann}\" selected>Ann</option>"))
    );
    assert_eq!(tab_count(&page.html, "Assigned"), 1);
    let page = get_page(&app, &cookie, "/issues?staff=none").await;
    assert_eq!(row_ids(&page.html), vec![free]);
    // A tab with the filter: Ann's closed issues (none).
    let page = get_page(&app, &cookie, &format!("/issues?tab=closed&staff={ann}")).await;
    assert!(row_ids(&page.html).is_empty());
    app.stop().await;
}

async fn unread_badge_counts_messages_the_viewer_has_not_read(b: Backend) {
    let app = spawn_app(b).await;
    let cookie = admin_session(&app).await;
    let (_ann, ann_token) = app.add_staff("Ann", "agent").await;
    let id = app.sms_issue("SMU1", &phone(31), "first").await;
    app.sms("SMU2", &phone(31), "second").await;
    app.sms("SMU3", &phone(31), "third").await;
    let badge = |html: &str| -> Option<i64> {
        let row = row_html(html, id);
        if row.contains("<span class=\"unread\" hidden>") {
            return None;
        }
        let marker = "<span class=\"unread-n\">";
        let at = row.find(marker)? + marker.len();
        let len = row[at..].find('<')?;
        row[at..at + len].parse().ok()
    };
    let page = get_page(&app, &cookie, "/").await;
    assert_eq!(badge(&page.html), Some(3));
    assert!(
        page.html
            .contains(&format!("class=\"row is-unread\" data-id=\"{id}\""))
    );

    // Reading it clears the badge; the viewer's own comment and the take
    // event do not count; another person's comment does.
    act(&app, &app.admin_token, id, "read").await;
    let r = app
        .post(
            &format!("/api/issues/{id}/comments"),
            &app.admin_token,
            json!({"body": "mine"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    act(&app, &ann_token, id, "take").await;
    let page = get_page(&app, &cookie, "/issues?tab=assigned").await;
    assert_eq!(badge(&page.html), None, "nothing new for the viewer");
    let r = app
        .post(
            &format!("/api/issues/{id}/comments"),
            &ann_token,
            json!({"body": "ann's note"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    app.sms("SMU4", &phone(31), "fourth").await;
    let page = get_page(&app, &cookie, "/issues?tab=assigned").await;
    assert_eq!(badge(&page.html), Some(2));
    app.stop().await;
}

async fn customer_text_is_escaped_in_rows(b: Backend) {
    let app = spawn_app(b).await;
    let cookie = admin_session(&app).await;
    let body = "<script>alert('x')</script><img src=x onerror=alert(1)> hi";
    let id = app.sms_issue("SMX1", &phone(41), body).await;
    app.db
        .exec(
            "UPDATE customers SET name = '<b onmouseover=alert(2)>Eve</b><script>steal()</script>' \
             WHERE id = (SELECT customer_id FROM issues WHERE id = 1)",
        )
        .await;
    assert_eq!(id, 1);
    for path in ["/", "/issues?q=eve"] {
        let page = get_page(&app, &cookie, path).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(row_ids(&page.html), vec![id], "{path}");
        for bad in [
            "<script>alert",
            "<script>steal",
            "<img src=x",
            "<b onmouseover",
        ] {
            assert!(
                !page.html.contains(bad),
                "{path}: customer markup {bad} is live"
            );
        }
        let row = row_html(&page.html, id);
        // askama escapes `<` and `>` as numeric references.
        assert!(
            row.contains("&#60;script&#62;alert("),
            "shown as text: {row}"
        );
        assert!(row.contains("&#60;b onmouseover=alert(2)&#62;Eve&#60;/b&#62;"));
    }
    app.stop().await;
}

async fn load_more_carries_a_cursor_to_the_next_rows(b: Backend) {
    let app = spawn_app(b).await;
    let cookie = admin_session(&app).await;
    let mut ids = Vec::new();
    for n in 0..25 {
        ids.push(
            app.sms_issue(&format!("SML{n}"), &phone(100 + n), "hello")
                .await,
        );
    }
    let page = get_page(&app, &cookie, "/").await;
    let first = row_ids(&page.html);
    assert_eq!(first.len(), 20, "20 rows at a time");
    assert_eq!(first[0], ids[24], "newest first");
    assert_eq!(tab_count(&page.html, "Unassigned"), 25);
    assert!(page.html.contains(">Load more</button>"));
    let marker = "name=\"cursor\" value=\"";
    let at = page
        .html
        .find(marker)
        .expect("the Load more form carries a cursor")
        + marker.len();
    let cursor = &page.html[at..at + page.html[at..].find('"').unwrap()];
    let next = get_page(
        &app,
        &cookie,
        &format!("/issues?tab=unassigned&cursor={cursor}"),
    )
    .await;
    let second = row_ids(&next.html);
    assert_eq!(second.len(), 5);
    assert!(second.iter().all(|id| !first.contains(id)), "no row twice");
    let mut all: Vec<i64> = first.iter().chain(&second).copied().collect();
    all.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(all, want, "every issue once");
    assert!(!next.html.contains(">Load more</button>"), "the last page");
    // The script's Load more asks the API with the same filters and cursor.
    assert!(
        page.html
            .contains("data-api=\"status=unassigned&#38;limit=20\"")
    );
    assert!(page.html.contains(&format!("data-cursor=\"{cursor}\"")));
    let api = client()
        .get(format!(
            "{}/api/issues?status=unassigned&limit=20&cursor={cursor}",
            app.base
        ))
        .header(COOKIE, format!("sb_session={cookie}"))
        .send()
        .await
        .unwrap();
    let json: Value = api.json().await.unwrap();
    let api_ids: Vec<i64> = json["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert_eq!(api_ids, second);
    app.stop().await;
}

async fn signed_out_visitors_are_sent_to_sign_in(b: Backend) {
    let app = spawn_app(b).await;
    for (path, to) in [
        ("/", "/login"),
        ("/issues?tab=mine", "/login?next=%2Fissues%3Ftab%3Dmine"),
        ("/tracker/summary", "/login?next=%2Ftracker%2Fsummary"),
    ] {
        let r = client()
            .get(format!("{}{}", app.base, path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.headers()["location"], to, "{path}");
    }
    let r = client()
        .post(format!("{}/notifications/read", app.base))
        .form(&[("all", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    app.stop().await;
}

async fn take_it_is_offered_only_where_the_state_machine_allows(b: Backend) {
    let app = spawn_app(b).await;
    let cookie = admin_session(&app).await;
    let (_ann, ann_token) = app.add_staff("Ann", "agent").await;
    let free = app.sms_issue("SMK1", &phone(51), "one").await;
    let taken = app.sms_issue("SMK2", &phone(52), "two").await;
    act(&app, &ann_token, taken, "take").await;
    let page = get_page(&app, &cookie, "/issues?tab=open").await;
    let row = row_html(&page.html, free);
    assert!(row.contains(&format!("action=\"/issues/{free}/take\"")));
    assert!(row.contains(">Take It</button>"));
    assert!(row.contains(&format!("name=\"csrf\" value=\"{}\"", page.csrf())));
    let row = row_html(&page.html, taken);
    assert!(!row.contains("Take It"), "assigned rows offer no Take It");
    app.stop().await;
}

async fn summary_gives_counts_and_unread_for_live_updates(b: Backend) {
    let app = spawn_app(b).await;
    let cookie = admin_session(&app).await;
    let a = app.sms_issue("SMY1", &phone(61), "one").await;
    app.sms("SMY2", &phone(61), "again").await;
    let bb = app.sms_issue("SMY3", &phone(62), "two").await;
    act(&app, &app.admin_token, bb, "take").await;
    act(&app, &app.admin_token, bb, "read").await;
    let r = client()
        .get(format!("{}/tracker/summary?ids={a},{bb}", app.base))
        .header(COOKIE, format!("sb_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["counts"],
        json!({"unassigned": 1, "mine": 1, "assigned": 1, "closed": 0})
    );
    assert_eq!(body["unread"], json!({ a.to_string(): 2 }));
    // With a search, the counts honour it.
    let r = client()
        .get(format!("{}/tracker/summary?q=5550100062", app.base))
        .header(COOKIE, format!("sb_session={cookie}"))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["counts"],
        json!({"unassigned": 0, "mine": 1, "assigned": 1, "closed": 0})
    );
    app.stop().await;
}

async fn mark_all_read_posts_with_csrf(b: Backend) {
    let app = spawn_app(b).await;
    let cookie = admin_session(&app).await;
    // A new issue notifies every active staff member in-app.
    app.sms_issue("SMN1", &phone(71), "hello").await;
    let unread = || async {
        let r = client()
            .get(format!("{}/api/notifications", app.base))
            .header(COOKIE, format!("sb_session={cookie}"))
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()["unread_count"]
            .as_i64()
            .unwrap()
    };
    assert!(unread().await > 0, "the admin was notified");
    let page = get_page(&app, &cookie, "/").await;
    assert!(
        page.html
            .contains(">Notifications <span class=\"badge\" id=\"notif-count\">")
    );
    // Without the token: refused.
    let r = client()
        .post(format!("{}/notifications/read", app.base))
        .header(COOKIE, format!("sb_session={cookie}"))
        .form(&[("all", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(unread().await > 0);
    // A form post goes back to the page; the script's fetch gets JSON.
    let done = post_form(&app, &cookie, "/notifications/read", &[("all", "1")]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(unread().await, 0);
    app.sms("SMN2", &phone(72), "another").await;
    let csrf = csrf_of(&app, &cookie).await;
    let r = client()
        .post(format!("{}/notifications/read", app.base))
        .header(COOKIE, format!("sb_session={cookie}"))
        .header("x-csrf-token", csrf)
        .form(&[("all", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["unread_count"], 0);
    assert_eq!(unread().await, 0);
    app.stop().await;
}
