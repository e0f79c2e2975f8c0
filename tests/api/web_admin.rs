//! SPEC §9 "Settings" and "Admin pages" (with §4's staff, rejected and
//! broadcast rules and §5's preference matrix), driven over HTTP as a
//! browser would, on both backends.

use reqwest::StatusCode;
use reqwest::header::COOKIE;
use serde_json::Value;

use crate::email_out::app_with_smtp;
use crate::helpers::Backend;
use crate::smtp_sink::SmtpSink;
use crate::spawn::{PUBLIC_URL, TestApp, spawn_app};
use crate::web_support::*;

both_backends!(
    settings_checkboxes_reflect_and_save_preferences,
    password_change_checks_the_current_one_and_the_rules,
    agents_get_403_on_every_admin_page,
    admin_adds_staff_and_the_welcome_link_works,
    invite_link_and_token_are_shown_once_and_work,
    invite_link_is_emailed_when_smtp_is_configured,
    deactivate_and_the_last_admin_rule,
    rejected_page_lists_a_bad_signature_webhook,
    broadcast_from_the_page_reaches_its_recipients,
    broadcast_form_refusals_are_sentences,
);

/// The events of SPEC §5, as the API keys them.
const EVENTS: [&str; 7] = [
    "issue_opened",
    "customer_replied",
    "unassigned_activity",
    "issue_assigned",
    "issue_closed",
    "comment_added",
    "issue_escalated",
];

/// The text of `<label for="{id}">`, tags removed: its accessible name.
fn label_text(html: &str, id: &str) -> Option<String> {
    let start = html.find(&format!("<label for=\"{id}\">"))?;
    let rest = &html[start..];
    let inner_start = rest.find('>')? + 1;
    let inner_end = rest.find("</label>")?;
    let mut out = String::new();
    let mut in_tag = false;
    for ch in rest[inner_start..inner_end].chars() {
        match ch {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    Some(out.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Whether the checkbox with this id is rendered checked.
fn checked(html: &str, id: &str) -> bool {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let tag_end = html[at..].find('>').expect("tag end") + at;
    html[at..tag_end].contains(" checked")
}

/// The first one-time sign-in link on a page, as a path on the test app.
fn welcome_path(html: &str) -> String {
    let prefix = format!("{PUBLIC_URL}/welcome/");
    let at = html.find(&prefix).expect("a sign-in link on the page") + PUBLIC_URL.len();
    let end = html[at..]
        .find(|c: char| c == '<' || c == '"' || c.is_whitespace())
        .expect("end of link")
        + at;
    html[at..end].to_string()
}

/// The secret shown once on the Staff page.
fn shown_secret(html: &str) -> String {
    let marker = "id=\"shown-secret\" class=\"secret\">";
    let at = html.find(marker).expect("a secret on the page") + marker.len();
    let end = html[at..].find('<').expect("end") + at;
    html[at..end].to_string()
}

async fn first_admin(app: &TestApp) -> i64 {
    app.db
        .store
        .staff_by_email("admin@localhost")
        .await
        .unwrap()
        .expect("first admin")
        .id
}

async fn api_staff(app: &TestApp, id: i64) -> Value {
    let list = app.get("/api/staff", &app.admin_token).await;
    list.body["staff"]
        .as_array()
        .expect("staff")
        .iter()
        .find(|s| s["id"] == id)
        .cloned()
        .expect("the staff member")
}

async fn settings_checkboxes_reflect_and_save_preferences(backend: Backend) {
    let app = spawn_app(backend).await;
    let cookie = admin_session(&app).await;
    let page = get_page(&app, &cookie, "/settings").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains(">Save</button>"));
    // Every cell of the matrix, named `<event> <channel>` as the API keys them.
    for event in EVENTS {
        for channel in ["in_app", "email"] {
            let id = format!("pref-{event}-{channel}");
            assert_eq!(
                label_text(&page.html, &id).as_deref(),
                Some(format!("{event} {channel}").as_str()),
                "label of {id}"
            );
        }
    }
    // Checked as the API says (an admin's defaults: in-app all on; email
    // on for issue_opened, off for unassigned_activity).
    assert!(checked(&page.html, "pref-issue_opened-in_app"));
    assert!(checked(&page.html, "pref-issue_opened-email"));
    assert!(!checked(&page.html, "pref-unassigned_activity-email"));

    // Save with two boxes ticked: every absent box is off.
    let saved = post_form(
        &app,
        &cookie,
        "/settings",
        &[("issue_opened.in_app", "on"), ("comment_added.email", "on")],
    )
    .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.html);
    assert!(saved.html.contains("role=\"status\">Saved.</p>"));
    let prefs = app.get("/api/me/preferences", &app.admin_token).await;
    for event in EVENTS {
        let want_in_app = event == "issue_opened";
        let want_email = event == "comment_added";
        assert_eq!(prefs.body[event]["in_app"], want_in_app, "{event} in_app");
        assert_eq!(prefs.body[event]["email"], want_email, "{event} email");
    }
    let again = get_page(&app, &cookie, "/settings").await;
    assert!(checked(&again.html, "pref-issue_opened-in_app"));
    assert!(!checked(&again.html, "pref-issue_opened-email"));
    assert!(checked(&again.html, "pref-comment_added-email"));
    assert!(!checked(&again.html, "pref-customer_replied-in_app"));

    // A change through the API shows on the page.
    let put = app
        .request(
            reqwest::Method::PUT,
            "/api/me/preferences",
            Some(&app.admin_token),
            Some(serde_json::json!({"issue_escalated": {"email": true}})),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    let third = get_page(&app, &cookie, "/settings").await;
    assert!(checked(&third.html, "pref-issue_escalated-email"));

    // Without the CSRF token nothing changes.
    let forged = client()
        .post(format!("{}/settings", app.base))
        .header(COOKIE, format!("sb_session={cookie}"))
        .form(&[("issue_closed.email", "on")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let prefs = app.get("/api/me/preferences", &app.admin_token).await;
    assert_eq!(prefs.body["issue_closed"]["email"], false);
}

async fn password_change_checks_the_current_one_and_the_rules(backend: Backend) {
    let app = spawn_app(backend).await;
    let cookie = admin_session(&app).await; // password "admin password 1"
    let other = sign_in(&app, "admin@localhost", "admin password 1").await;
    let page = get_page(&app, &cookie, "/settings").await;
    for label in [
        "<label for=\"current\">Current password</label>",
        "<label for=\"password\">New password</label>",
        "<label for=\"repeat\">Repeat password</label>",
        ">Change password</button>",
    ] {
        assert!(page.html.contains(label), "settings lacks {label}");
    }
    let change = |current: &'static str, new: &'static str, repeat: &'static str| {
        let app = &app;
        let cookie = cookie.clone();
        async move {
            post_form(
                app,
                &cookie,
                "/settings/password",
                &[("current", current), ("password", new), ("repeat", repeat)],
            )
            .await
        }
    };
    let wrong = change(
        "not my password",
        "a new long password",
        "a new long password",
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong
            .html
            .contains("role=\"alert\">Your current password is not right.</p>"),
        "{}",
        wrong.html
    );
    let short = change("admin password 1", "short", "short").await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        short.html.contains("at least 12 characters"),
        "{}",
        short.html
    );
    let mismatch = change(
        "admin password 1",
        "a new long password",
        "another long one",
    )
    .await;
    assert_eq!(mismatch.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(mismatch.html.contains("do not match"));
    // Nothing changed so far.
    sign_in(&app, "admin@localhost", "admin password 1").await;

    let ok = change(
        "admin password 1",
        "a new long password",
        "a new long password",
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.html);
    assert!(
        ok.html
            .contains("role=\"status\">Your password is changed.")
    );
    // This session lives on; the other one ended.
    assert_eq!(
        get_page(&app, &cookie, "/settings").await.status,
        StatusCode::OK
    );
    assert_eq!(
        get_page(&app, &other, "/settings").await.status,
        StatusCode::SEE_OTHER
    );
    // The new password signs in, the old one no longer does.
    sign_in(&app, "admin@localhost", "a new long password").await;
    let old = client()
        .post(format!("{}/login", app.base))
        .form(&[
            ("email", "admin@localhost"),
            ("password", "admin password 1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
}

async fn agents_get_403_on_every_admin_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, agent) = staff_session(&app, "agent@example.test", "agent").await;
    // Agents see no admin links, and the pages refuse them.
    let home = get_page(&app, &agent, "/settings").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(!home.html.contains("href=\"/staff\""));
    for path in ["/staff", "/rejected", "/broadcasts", "/broadcasts/1"] {
        let page = get_page(&app, &agent, path).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "GET {path}");
        assert!(page.html.contains("Only an admin may open this page."));
    }
    let posts: [(&str, &[(&str, &str)]); 5] = [
        (
            "/staff",
            &[
                ("email", "x@example.test"),
                ("name", "X"),
                ("role", "admin"),
            ],
        ),
        ("/staff/{admin}/role", &[("role", "agent")]),
        ("/staff/{admin}/active", &[("active", "false")]),
        ("/staff/{admin}/token", &[]),
        ("/broadcasts", &[("body", "Hi"), ("all", "on")]),
    ];
    let admin_id = first_admin(&app).await;
    for (path, fields) in posts {
        let path = path.replace("{admin}", &admin_id.to_string());
        let page = post_form(&app, &agent, &path, fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "POST {path}");
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM broadcasts").await, 0);
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM staff WHERE email = 'x@example.test'")
            .await,
        0
    );
    let admin = api_staff(&app, admin_id).await;
    assert_eq!(admin["role"], "admin");
    assert_eq!(admin["active"], true);
}

async fn admin_adds_staff_and_the_welcome_link_works(backend: Backend) {
    let app = spawn_app(backend).await;
    let cookie = admin_session(&app).await;
    let page = get_page(&app, &cookie, "/staff").await;
    assert_eq!(page.status, StatusCode::OK);
    for label in [
        "<label for=\"add-email\">Email</label>",
        "<label for=\"add-name\">Name</label>",
        "<label for=\"add-role\">Role</label>",
        ">Add staff</button>",
        "admin@localhost",
    ] {
        assert!(page.html.contains(label), "staff page lacks {label}");
    }

    // Refusals are sentences on the page, and keep what was typed.
    let bad = post_form(
        &app,
        &cookie,
        "/staff",
        &[
            ("email", "not an address"),
            ("name", "Nina"),
            ("role", "agent"),
        ],
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.html
            .contains("role=\"alert\">The email is not an email address.</p>"),
        "{}",
        bad.html
    );
    assert!(bad.html.contains("value=\"Nina\""));
    let taken = post_form(
        &app,
        &cookie,
        "/staff",
        &[
            ("email", "ADMIN@localhost"),
            ("name", "Again"),
            ("role", "agent"),
        ],
    )
    .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert!(
        taken
            .html
            .contains("role=\"alert\">A staff member with that email exists.</p>")
    );

    let added = post_form(
        &app,
        &cookie,
        "/staff",
        &[
            ("email", "Nina@Example.test"),
            ("name", "Nina Simone"),
            ("role", "admin"),
        ],
    )
    .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.html);
    assert!(added.html.contains("Nina Simone was added as admin."));
    assert!(added.html.contains("not emailed"), "no SMTP in this test");
    let nina = app
        .db
        .store
        .staff_by_email("nina@example.test")
        .await
        .unwrap()
        .expect("created");
    assert_eq!(nina.role.as_str(), "admin");
    assert!(nina.active);

    // The link works once: a password, then signing in.
    let path = welcome_path(&added.html);
    let welcome = get_page(&app, "", &path).await;
    assert_eq!(welcome.status, StatusCode::OK);
    assert!(welcome.html.contains("Nina Simone"));
    let set = client()
        .post(format!("{}{path}", app.base))
        .form(&[
            ("password", "nina's long password"),
            ("repeat", "nina's long password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::SEE_OTHER);
    let nina_cookie = sign_in(&app, "nina@example.test", "nina's long password").await;
    assert_eq!(
        get_page(&app, &nina_cookie, "/staff").await.status,
        StatusCode::OK,
        "an admin added as admin opens admin pages"
    );
    assert_eq!(get_page(&app, "", &path).await.status, StatusCode::GONE);
}

async fn invite_link_and_token_are_shown_once_and_work(backend: Backend) {
    let app = spawn_app(backend).await;
    let cookie = admin_session(&app).await;
    let (agent_id, _) = app.add_staff("Otto", "agent").await;
    let invited = post_form(&app, &cookie, &format!("/staff/{agent_id}/invite"), &[]).await;
    assert_eq!(invited.status, StatusCode::OK, "{}", invited.html);
    let path = welcome_path(&invited.html);
    assert_eq!(get_page(&app, "", &path).await.status, StatusCode::OK);
    // Shown once: the Staff page itself does not carry it.
    let later = get_page(&app, &cookie, "/staff").await;
    assert!(!later.html.contains("/welcome/"));

    let made = post_form(&app, &cookie, &format!("/staff/{agent_id}/token"), &[]).await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.html);
    let token = shown_secret(&made.html);
    let me = app.get("/api/me", &token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["id"], agent_id);
    assert!(
        !get_page(&app, &cookie, "/staff")
            .await
            .html
            .contains(&token)
    );

    let missing = post_form(&app, &cookie, "/staff/999999/token", &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

async fn invite_link_is_emailed_when_smtp_is_configured(backend: Backend) {
    let sink = SmtpSink::start();
    let app = app_with_smtp(backend, &sink).await;
    let cookie = admin_session(&app).await;
    let added = post_form(
        &app,
        &cookie,
        "/staff",
        &[
            ("email", "mail.me@example.test"),
            ("name", "Mia"),
            ("role", "agent"),
        ],
    )
    .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.html);
    assert!(
        added
            .html
            .contains("It was also emailed to mail.me@example.test.")
    );
    let shown = welcome_path(&added.html);
    let got = sink.wait_for(1, 15).await;
    let mail = got
        .iter()
        .find(|m| m.rcpt_tos == vec!["mail.me@example.test".to_string()])
        .expect("the invitation");
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Your sign-in link for Switchboard")
    );
    // The body may be quoted-printable: undo soft line breaks first.
    let body = mail.body().replace("=\r\n", "").replace("=3D", "=");
    assert!(body.contains(&format!("{PUBLIC_URL}{shown}")), "{body}");
    assert!(
        mail.header("Auto-Submitted").is_some(),
        "an automated email"
    );
}

async fn deactivate_and_the_last_admin_rule(backend: Backend) {
    let app = spawn_app(backend).await;
    let cookie = admin_session(&app).await;
    let (agent_id, agent) = staff_session(&app, "ada@example.test", "agent").await;
    let admin_id = first_admin(&app).await;

    let off = post_form(
        &app,
        &cookie,
        &format!("/staff/{agent_id}/active"),
        &[("active", "false")],
    )
    .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.html);
    assert!(off.html.contains("role=\"status\">ada is deactivated"));
    assert_eq!(api_staff(&app, agent_id).await["active"], false);
    assert_eq!(
        get_page(&app, &agent, "/settings").await.status,
        StatusCode::SEE_OTHER,
        "a deactivated person's session ends"
    );
    let on = post_form(
        &app,
        &cookie,
        &format!("/staff/{agent_id}/active"),
        &[("active", "true")],
    )
    .await;
    assert_eq!(on.status, StatusCode::OK);
    assert_eq!(api_staff(&app, agent_id).await["active"], true);
    assert_eq!(
        get_page(&app, &agent, "/settings").await.status,
        StatusCode::SEE_OTHER,
        "activating again does not revive an old session"
    );

    // The only admin can neither be deactivated nor demoted.
    for (path, field) in [
        (format!("/staff/{admin_id}/active"), ("active", "false")),
        (format!("/staff/{admin_id}/role"), ("role", "agent")),
    ] {
        let refused = post_form(&app, &cookie, &path, &[field]).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{path}");
        assert!(
            refused.html.contains(
                "role=\"alert\">The last active admin cannot be demoted or deactivated.</p>"
            ),
            "{}",
            refused.html
        );
    }
    let me = api_staff(&app, admin_id).await;
    assert_eq!(
        (me["role"].as_str(), me["active"].as_bool()),
        (Some("admin"), Some(true))
    );

    // With a second admin, the first may step down.
    let promoted = post_form(
        &app,
        &cookie,
        &format!("/staff/{agent_id}/role"),
        &[("role", "admin")],
    )
    .await;
    assert_eq!(promoted.status, StatusCode::OK);
    assert!(promoted.html.contains("ada is now an admin."));
    let stepped = post_form(
        &app,
        &cookie,
        &format!("/staff/{admin_id}/role"),
        &[("role", "agent")],
    )
    .await;
    assert_eq!(stepped.status, StatusCode::OK, "{}", stepped.html);
    let me = app.db.store.get_staff(admin_id).await.unwrap();
    assert_eq!(me.role.as_str(), "agent");
    // And is an agent from the next request on.
    assert_eq!(
        get_page(&app, &cookie, "/staff").await.status,
        StatusCode::FORBIDDEN
    );
}

async fn rejected_page_lists_a_bad_signature_webhook(backend: Backend) {
    let app = spawn_app(backend).await;
    let cookie = admin_session(&app).await;
    let empty = get_page(&app, &cookie, "/rejected").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(empty.html.contains("Nothing has been rejected"));

    let resp = app
        .webhook_with_signature(
            "/webhooks/twilio/sms",
            &[
                ("MessageSid", "SMrej1"),
                ("AccountSid", "ACtest"),
                ("From", "+15550100999"),
                ("To", "+15550100000"),
                ("Body", "<script>alert(1)</script>"),
            ],
            Some("d3Jvbmc="),
        )
        .await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN);
    let api = app.get("/api/rejected", &app.admin_token).await;
    let row = &api.body["rejected"][0];
    assert_eq!(row["kind"], "webhook");
    let reason = row["reason"].as_str().unwrap().to_string();

    let page = get_page(&app, &cookie, "/rejected").await;
    assert_eq!(page.status, StatusCode::OK);
    for label in [
        ">Kind</th>",
        ">Reason</th>",
        ">Received</th>",
        ">Details</th>",
    ] {
        assert!(page.html.contains(label), "rejected page lacks {label}");
    }
    assert!(page.html.contains("<td data-head=\"Kind\">webhook</td>"));
    let escaped = reason
        .replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;");
    assert!(
        page.html.contains(&reason) || page.html.contains(&escaped),
        "reason {reason:?} missing: {}",
        page.html
    );
    assert!(!page.html.contains("<script>alert"), "nothing unescaped");
}

/// A customer who texted in: (customer id, phone).
async fn customer(app: &TestApp, sid: &str, phone: &str) -> i64 {
    let issue = app.sms_issue(sid, phone, "hello").await;
    let got = app
        .get(&format!("/api/issues/{issue}"), &app.admin_token)
        .await;
    got.body["customer_id"].as_i64().expect("customer id")
}

async fn broadcast_from_the_page_reaches_its_recipients(backend: Backend) {
    let app = spawn_app(backend).await;
    let cookie = admin_session(&app).await;
    let page = get_page(&app, &cookie, "/broadcasts").await;
    assert_eq!(page.status, StatusCode::OK);
    for label in [
        "<label for=\"bc-body\">Message</label>",
        "<label for=\"bc-all\">All customers</label>",
        "<label for=\"bc-ids\">Customer ids</label>",
        ">Send broadcast</button>",
    ] {
        assert!(page.html.contains(label), "broadcasts page lacks {label}");
    }
    let a = customer(&app, "SMb1", "+15550100201").await;
    let b = customer(&app, "SMb2", "+15550100202").await;
    let _c = customer(&app, "SMb3", "+15550100203").await;

    let ids = format!("{a}, #{b}");
    let sent = post_form(
        &app,
        &cookie,
        "/broadcasts",
        &[("body", "We are closed on Monday."), ("customer_ids", &ids)],
    )
    .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.html);
    let location = sent.location().to_string();
    let id: i64 = location
        .strip_prefix("/broadcasts/")
        .and_then(|s| s.parse().ok())
        .expect("redirect to the broadcast");
    let api = app
        .get(&format!("/api/broadcasts/{id}"), &app.admin_token)
        .await;
    assert_eq!(api.body["total"], 2);
    assert_eq!(api.body["body"], "We are closed on Monday.");

    let detail = get_page(&app, &cookie, &location).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(detail.html.contains(&format!("Broadcast #{id}")));
    assert!(detail.html.contains("We are closed on Monday."));
    for phone in ["+15550100201", "+15550100202"] {
        assert!(detail.html.contains(phone), "recipient {phone} listed");
    }
    assert!(!detail.html.contains("+15550100203"), "not a recipient");
    for label in [
        ">Sent</dt>",
        ">Skipped</dt>",
        ">Failed</dt>",
        ">Pending</dt>",
    ] {
        assert!(detail.html.contains(label), "detail lacks {label}");
    }

    // To everyone: three recipients; the list shows both, newest first.
    let all = post_form(
        &app,
        &cookie,
        "/broadcasts",
        &[("body", "Second news"), ("all", "on"), ("customer_ids", "")],
    )
    .await;
    assert_eq!(all.status, StatusCode::SEE_OTHER, "{}", all.html);
    let second: i64 = all
        .location()
        .trim_start_matches("/broadcasts/")
        .parse()
        .unwrap();
    assert_eq!(
        app.get(&format!("/api/broadcasts/{second}"), &app.admin_token)
            .await
            .body["total"],
        3
    );
    let list = get_page(&app, &cookie, "/broadcasts").await;
    let first_at = list
        .html
        .find(&format!("Broadcast #{id}<"))
        .expect("first listed");
    let second_at = list
        .html
        .find(&format!("Broadcast #{second}<"))
        .expect("second listed");
    assert!(second_at < first_at, "newest first");
    assert!(list.html.contains("3 recipients:"));
    assert_eq!(
        get_page(&app, &cookie, "/broadcasts/999999").await.status,
        StatusCode::NOT_FOUND
    );
}

/// A form's fields.
type Fields<'a> = &'a [(&'a str, &'a str)];

async fn broadcast_form_refusals_are_sentences(backend: Backend) {
    let app = spawn_app(backend).await;
    let cookie = admin_session(&app).await;
    let a = customer(&app, "SMr1", "+15550100301").await;
    let a = a.to_string();
    let cases: [(Fields, StatusCode, &str); 5] = [
        (
            &[("body", "Hi"), ("all", "on"), ("customer_ids", a.as_str())],
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choose either All customers or customer ids, not both.",
        ),
        (
            &[("body", "Hi")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choose All customers or give customer ids.",
        ),
        (
            &[("body", "Hi"), ("customer_ids", "12, twelve")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "is not a customer id",
        ),
        (
            &[("body", "  "), ("customer_ids", a.as_str())],
            StatusCode::UNPROCESSABLE_ENTITY,
            "The message must not be empty.",
        ),
        (
            &[("body", "Hi"), ("customer_ids", "999999")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "No customer #999999.",
        ),
    ];
    for (fields, status, sentence) in cases {
        let page = post_form(&app, &cookie, "/broadcasts", fields).await;
        assert_eq!(page.status, status, "{fields:?}: {}", page.html);
        assert!(
            page.html.contains("role=\"alert\">") && page.html.contains(sentence),
            "{fields:?}: {}",
            page.html
        );
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM broadcasts").await, 0);
}
