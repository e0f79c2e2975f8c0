//! SPEC §9 "Issue page" and "View Customer", driven over HTTP as a browser
//! would (session cookie, CSRF token in each form), on both backends:
//! the §2 buttons per viewer, the Take It race, replies through the Twilio
//! stand-in, comments and the 5-hour rule, the "New messages" line, read
//! marking, escaping of customer text, View Customer and Merge.
//!
//! Buttons are found in the HTML by their visible label in the element a
//! person would use (`>Take It</button>`, `>Assign It</summary>`), the
//! names the browser tests look for by role.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use reqwest::header::COOKIE;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::Backend;
use crate::spawn::{ACCOUNT_SID, TestApp, spawn_app};
use crate::web_support::*;

mod customer;

both_backends!(
    buttons_follow_the_state_machine_for_each_viewer,
    two_sessions_race_take_it_and_the_loser_is_told_who_won,
    reply_from_the_page_is_queued_and_sent_through_twilio,
    reply_files_follow_the_attachment_rules,
    reply_files_go_by_mms_links_that_twilio_can_fetch,
    reply_files_go_as_email_attachments,
    reply_to_an_opted_out_customer_is_refused_with_a_sentence,
    comments_add_edit_delete_and_the_five_hour_rule,
    new_messages_line_sits_before_the_first_unread_and_opening_marks_read,
    customer_text_is_escaped_never_markup,
    live_fragments_render_the_same_rows,
);

// ------------------------------------------------------------------ helpers

fn sid() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("SMweb{:028x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A fresh phone number per call, so tests never share a customer.
fn phone() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("+1555010{:04}", 2000 + NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn accept_sms(app: &TestApp) {
    Mock::given(method("POST"))
        .and(path(format!(
            "/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        )))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"sid": sid(), "status": "queued"})),
        )
        .mount(&app.twilio)
        .await;
}

/// Whether the page offers a control with this visible label.
fn has(page: &Page, control: &str) -> bool {
    let needle = match control {
        "Assign It" | "Edit" => format!(">{control}</summary>"),
        _ => format!(">{control}</button>"),
    };
    page.html.contains(&needle)
}

#[track_caller]
fn offers(page: &Page, who: &str, want: &[&str]) {
    for control in [
        "Take It",
        "Assign It",
        "Unassign",
        "Mark as Closed",
        "Resolve",
        "Reopen",
    ] {
        assert_eq!(
            has(page, control),
            want.contains(&control),
            "{who}: `{control}` should {}be offered",
            if want.contains(&control) { "" } else { "not " }
        );
    }
}

/// The `role="alert"` sentence of a page.
fn alert(page: &Page) -> String {
    let at = page
        .html
        .find("role=\"alert\">")
        .unwrap_or_else(|| panic!("no alert on the page: {}", page.html));
    let rest = &page.html[at + 13..];
    unescape(&rest[..rest.find('<').unwrap_or(rest.len())])
}

/// Askama's escapes back to text (`&#39;` → `'`), to compare sentences.
fn unescape(s: &str) -> String {
    s.replace("&#39;", "'")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

/// A multipart form post as the reply form sends it: the CSRF token first.
async fn post_multipart(
    app: &TestApp,
    cookie: &str,
    path: &str,
    fields: &[(&str, &str)],
    files: &[(&str, &str, &[u8])],
) -> Page {
    let boundary = "----sbtestboundary7MA4YWxkTrZu0gW";
    let mut body: Vec<u8> = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for (filename, ct, data) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{filename}\"\r\nContent-Type: {ct}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let resp = client()
        .post(format!("{}{}", app.base, path))
        .header(COOKIE, format!("sb_session={cookie}"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("multipart post");
    Page {
        status: resp.status(),
        headers: resp.headers().clone(),
        html: resp.text().await.unwrap_or_default(),
    }
}

async fn reply(app: &TestApp, cookie: &str, issue: i64, text: &str) -> Page {
    let csrf = csrf_of(app, cookie).await;
    post_multipart(
        app,
        cookie,
        &format!("/issues/{issue}/reply"),
        &[("csrf", &csrf), ("body", text)],
        &[],
    )
    .await
}

async fn timeline(app: &TestApp, issue: i64) -> Vec<Value> {
    let r = app
        .get(
            &format!("/api/issues/{issue}/messages?limit=100"),
            &app.admin_token,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["messages"].as_array().expect("messages").clone()
}

/// The API's `unread` for the session's person (the cookie reads the API).
async fn unread(app: &TestApp, cookie: &str, issue: i64) -> Value {
    let p = get_page(app, cookie, &format!("/api/issues/{issue}")).await;
    serde_json::from_str::<Value>(&p.html).expect("issue JSON")["unread"].clone()
}

#[track_caller]
fn redirected_to(page: &Page, to: &str) {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    assert!(
        page.location().starts_with(to),
        "went to {}, not {to}",
        page.location()
    );
}

// ------------------------------------------------------------------ tests

async fn buttons_follow_the_state_machine_for_each_viewer(b: Backend) {
    let app = spawn_app(b).await;
    let (_, ann) = staff_session(&app, "ann@example.test", "agent").await;
    let (_, bob) = staff_session(&app, "bob@example.test", "agent").await;
    let admin = admin_session(&app).await;
    let issue = app.sms_issue(&sid(), &phone(), "My router is down").await;
    let url = format!("/issues/{issue}");

    // Unassigned: anyone may take, assign, close or resolve it.
    for (who, cookie) in [("ann", &ann), ("bob", &bob), ("admin", &admin)] {
        let page = get_page(&app, cookie, &url).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        offers(
            &page,
            who,
            &["Take It", "Assign It", "Mark as Closed", "Resolve"],
        );
        assert!(page.html.contains(&format!("#{issue}")));
        assert!(page.html.contains("status-unassigned"), "red: unassigned");
        assert!(
            page.html
                .contains("<label for=\"assignee\">Assignee</label>")
        );
        assert!(has(&page, "Assign"));
        assert!(has(&page, "Watch"));
    }

    // Ann takes it from the page.
    redirected_to(
        &post_form(&app, &ann, &format!("{url}/take"), &[]).await,
        &url,
    );
    let page = get_page(&app, &ann, &url).await;
    offers(
        &page,
        "ann (assignee)",
        &["Assign It", "Unassign", "Mark as Closed", "Resolve"],
    );
    assert!(page.html.contains("Assigned to ann"), "blue with the name");
    assert!(page.html.contains("status-assigned"));
    // Another agent: no Unassign, no close on someone else's issue.
    offers(
        &get_page(&app, &bob, &url).await,
        "bob (other agent)",
        &["Assign It"],
    );
    // An admin may unassign but not close someone else's issue.
    offers(
        &get_page(&app, &admin, &url).await,
        "admin",
        &["Assign It", "Unassign"],
    );

    // What the page does not offer, the server refuses with a sentence.
    let refused = post_form(&app, &bob, &format!("{url}/close"), &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        alert(&refused),
        "Only the assignee can close this issue. Take it or reassign it first."
    );
    let refused = post_form(&app, &bob, &format!("{url}/unassign"), &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(alert(&refused), "You are not allowed to do that.");

    // Assign It to Bob, with the Assignee select's value.
    let bob_id = app
        .db
        .store
        .staff_by_email("bob@example.test")
        .await
        .unwrap()
        .unwrap()
        .id;
    redirected_to(
        &post_form(
            &app,
            &ann,
            &format!("{url}/assign"),
            &[("assignee_id", &bob_id.to_string())],
        )
        .await,
        &url,
    );
    let bad = post_form(
        &app,
        &ann,
        &format!("{url}/assign"),
        &[("assignee_id", "999999")],
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        alert(&bad),
        "That person is not active staff; choose someone else."
    );

    // Bob resolves it: closed, green, with who closed it.
    redirected_to(
        &post_form(&app, &bob, &format!("{url}/resolve"), &[]).await,
        &url,
    );
    let page = get_page(&app, &bob, &url).await;
    offers(&page, "bob (closer)", &["Reopen"]);
    assert!(page.html.contains("Resolved by bob"));
    assert!(page.html.contains("status-closed"));
    assert!(page.html.contains("bob resolved the issue"), "event line");
    offers(&get_page(&app, &ann, &url).await, "ann (neither)", &[]);
    offers(&get_page(&app, &admin, &url).await, "admin", &["Reopen"]);
    let refused = post_form(&app, &ann, &format!("{url}/take"), &[]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(alert(&refused), "This issue is closed. Reopen it first.");

    // Reopen, then Watch and Unwatch (the API's watchers).
    redirected_to(
        &post_form(&app, &admin, &format!("{url}/reopen"), &[]).await,
        &url,
    );
    redirected_to(
        &post_form(&app, &ann, &format!("{url}/watch"), &[]).await,
        &url,
    );
    let page = get_page(&app, &ann, &url).await;
    assert!(has(&page, "Unwatch") && !has(&page, "Watch"));
    assert!(app.db.store.watchers(issue).await.unwrap().len() == 1);
    redirected_to(
        &post_form(&app, &ann, &format!("{url}/unwatch"), &[]).await,
        &url,
    );
    assert!(has(&get_page(&app, &ann, &url).await, "Watch"));

    // A forged form (no token) changes nothing.
    let forged = client()
        .post(format!("{}{url}/take", app.base))
        .header(COOKIE, format!("sb_session={ann}"))
        .form(&[("csrf", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    app.stop().await;
}

async fn two_sessions_race_take_it_and_the_loser_is_told_who_won(b: Backend) {
    let app = spawn_app(b).await;
    let (_, ann) = staff_session(&app, "ann@example.test", "agent").await;
    let (_, bob) = staff_session(&app, "bob@example.test", "agent").await;
    let issue = app.sms_issue(&sid(), &phone(), "Race me").await;
    let url = format!("/issues/{issue}/take");
    let (a, b) = tokio::join!(
        post_form(&app, &ann, &url, &[]),
        post_form(&app, &bob, &url, &[])
    );
    let (winner, loser) = match (a.status, b.status) {
        (StatusCode::SEE_OTHER, StatusCode::CONFLICT) => ("ann", b),
        (StatusCode::CONFLICT, StatusCode::SEE_OTHER) => ("bob", a),
        other => panic!("exactly one must win: {other:?}"),
    };
    assert_eq!(
        alert(&loser),
        format!("{winner} has already taken this issue.")
    );
    // The loser still sees the issue, now without Take It.
    assert!(!has(&loser, "Take It"));
    assert!(loser.html.contains(&format!("Assigned to {winner}")));
    app.stop().await;
}

async fn reply_from_the_page_is_queued_and_sent_through_twilio(b: Backend) {
    let app = spawn_app(b).await;
    accept_sms(&app).await;
    let (_, ann) = staff_session(&app, "ann@example.test", "agent").await;
    let issue = app
        .sms_issue(&sid(), &phone(), "Is my order shipped?")
        .await;
    let page = get_page(&app, &ann, &format!("/issues/{issue}")).await;
    assert!(
        page.html
            .contains("<label for=\"reply-body\">Reply to customer</label>")
    );
    assert!(has(&page, "Send reply"));
    assert!(page.html.contains("id=\"sms-count\""), "SMS count shown");
    assert!(page.html.contains("aria-live=\"polite\""));
    assert!(
        page.html
            .contains("<label for=\"reply-files\">Attach files</label>")
    );

    let sent = reply(&app, &ann, issue, "Yes, it left today.").await;
    redirected_to(&sent, &format!("/issues/{issue}#m"));
    let msgs = timeline(&app, issue).await;
    let r = msgs.iter().find(|m| m["kind"] == "reply").expect("a reply");
    assert_eq!(r["body"], "Yes, it left today.");
    assert_eq!(r["author"]["name"], "ann");
    // Queued in the same transaction, then sent by the outbox worker.
    app.eventually(10, "Twilio got the reply", || async {
        app.twilio
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .any(|q| String::from_utf8_lossy(&q.body).contains("left+today"))
    })
    .await;
    // The page shows the reply with its delivery state.
    let page = get_page(&app, &ann, &format!("/issues/{issue}")).await;
    assert!(page.html.contains("Yes, it left today."));
    assert!(
        page.html.contains("class=\"delivery delivery-"),
        "delivery state shown"
    );

    // The API's checks: an empty body is refused and nothing is queued.
    let empty = reply(&app, &ann, issue, "   ").await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(alert(&empty), "Write something first.");
    let long = "x".repeat(1601);
    let too_long = reply(&app, &ann, issue, &long).await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(alert(&too_long), "The message is too long.");
    assert!(too_long.html.contains(&long), "the draft is kept");
    // Without the token nothing is sent.
    let forged = post_multipart(
        &app,
        &ann,
        &format!("/issues/{issue}/reply"),
        &[("body", "forged")],
        &[],
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // A closed issue has no reply box, and a reply is refused.
    redirected_to(
        &post_form(&app, &ann, &format!("/issues/{issue}/close"), &[]).await,
        &format!("/issues/{issue}"),
    );
    let page = get_page(&app, &ann, &format!("/issues/{issue}")).await;
    assert!(
        page.html.contains("<form id=\"reply-form\" hidden"),
        "no reply box"
    );
    let closed = reply(&app, &ann, issue, "Hello?").await;
    assert_eq!(closed.status, StatusCode::CONFLICT);
    assert_eq!(alert(&closed), "This issue is closed. Reopen it first.");
    let replies = timeline(&app, issue)
        .await
        .iter()
        .filter(|m| m["kind"] == "reply")
        .count();
    assert_eq!(replies, 1, "only the one good reply was stored");
    app.stop().await;
}

async fn reply_files_follow_the_attachment_rules(b: Backend) {
    let app = spawn_app(b).await;
    accept_sms(&app).await;
    let (_, ann) = staff_session(&app, "ann@example.test", "agent").await;
    let issue = app.sms_issue(&sid(), &phone(), "Send me the manual").await;
    let csrf = csrf_of(&app, &ann).await;
    let url = format!("/issues/{issue}/reply");

    // A type outside the list: refused, nothing queued, the text kept.
    let refused = post_multipart(
        &app,
        &ann,
        &url,
        &[("csrf", &csrf), ("body", "Here it is")],
        &[("setup.exe", "application/octet-stream", b"MZ")],
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        alert(&refused).contains("setup.exe: file type .exe is not allowed"),
        "{}",
        alert(&refused)
    );
    assert!(refused.html.contains(">Here it is</textarea>"));
    assert!(
        timeline(&app, issue)
            .await
            .iter()
            .all(|m| m["kind"] != "reply")
    );

    // An image and a PDF: stored on the reply, shown as thumbnail and link.
    let png: &[u8] = b"\x89PNG\r\n\x1a\nfake";
    let ok = post_multipart(
        &app,
        &ann,
        &url,
        &[("csrf", &csrf), ("body", "Here it is")],
        &[
            ("photo.png", "image/png", png),
            ("manual.pdf", "application/pdf", b"%PDF-1.4"),
        ],
    )
    .await;
    redirected_to(&ok, &format!("/issues/{issue}#m"));
    let msgs = timeline(&app, issue).await;
    let r = msgs.iter().find(|m| m["kind"] == "reply").expect("reply");
    let files = r["attachments"].as_array().expect("attachments");
    assert_eq!(files.len(), 2, "{r}");
    let img_id = files.iter().find(|f| f["filename"] == "photo.png").unwrap()["id"]
        .as_i64()
        .unwrap();
    let page = get_page(&app, &ann, &format!("/issues/{issue}")).await;
    assert!(page.html.contains(&format!(
        "<img src=\"/api/attachments/{img_id}\" alt=\"photo.png\" loading=\"lazy\">"
    )));
    assert!(page.html.contains(">manual.pdf</a>"));
    // The session cookie may download it (the thumbnail's GET).
    let got = get_page(&app, &ann, &format!("/api/attachments/{img_id}")).await;
    assert_eq!(got.status, StatusCode::OK);
    app.stop().await;
}

/// The form pairs of every request Twilio's stand-in received.
async fn twilio_forms(app: &TestApp) -> Vec<Vec<(String, String)>> {
    app.twilio
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|q| switchboard::channels::sms::twilio::parse_form(&q.body))
        .collect()
}

async fn reply_files_go_by_mms_links_that_twilio_can_fetch(b: Backend) {
    let app = spawn_app(b).await;
    accept_sms(&app).await;
    let (_, ann) = staff_session(&app, "ann@example.test", "agent").await;
    let issue = app.sms_issue(&sid(), &phone(), "Photo of the label?").await;
    let csrf = csrf_of(&app, &ann).await;
    let png: &[u8] = b"\x89PNG\r\n\x1a\nlabel";
    let sent = post_multipart(
        &app,
        &ann,
        &format!("/issues/{issue}/reply"),
        &[("csrf", &csrf), ("body", "Here is the label")],
        &[
            ("label.png", "image/png", png),
            ("terms.pdf", "application/pdf", b"%PDF-1.4 terms"),
        ],
    )
    .await;
    redirected_to(&sent, &format!("/issues/{issue}#m"));
    app.eventually(10, "Twilio got the MMS", || async {
        twilio_forms(&app).await.iter().any(|f| {
            f.iter()
                .any(|(k, v)| k == "Body" && v == "Here is the label")
        })
    })
    .await;
    let forms = twilio_forms(&app).await;
    let form = forms
        .iter()
        .find(|f| {
            f.iter()
                .any(|(k, v)| k == "Body" && v == "Here is the label")
        })
        .unwrap();
    let urls: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k == "MediaUrl")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(urls.len(), 2, "one MediaUrl per file: {form:?}");
    let prefix = format!("{}/media/", crate::spawn::PUBLIC_URL);
    let mut got = Vec::new();
    for url in &urls {
        let token = url
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{url} is not under {prefix}"));
        // Fetched as Twilio would: no cookie, no token.
        let r = client()
            .get(format!("{}/media/{token}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert!(
            r.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .starts_with("sandbox")
        );
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        got.push((ct, r.bytes().await.unwrap().to_vec()));
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            ("application/pdf".to_string(), b"%PDF-1.4 terms".to_vec()),
            ("image/png".to_string(), png.to_vec()),
        ]
    );
    // A guessed or altered token finds nothing.
    for bad in ["nonsense", &format!("{}x", &urls[0][prefix.len()..])] {
        let r = client()
            .get(format!("{}/media/{bad}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    // A link past its time finds nothing, and housekeeping removes it.
    let file_id = timeline(&app, issue)
        .await
        .iter()
        .find(|m| m["kind"] == "reply")
        .and_then(|m| m["attachments"][0]["id"].as_i64())
        .expect("the reply's file");
    let stale = app
        .db
        .store
        .create_media_link(file_id, std::time::Duration::ZERO)
        .await
        .unwrap();
    let r = client()
        .get(format!("{}/media/{stale}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let purged = app.db.store.purge_media_links(Utc::now()).await.unwrap();
    assert_eq!(purged, 1, "only the expired link goes");
    app.eventually(10, "the reply to be recorded as handed over", || async {
        timeline(&app, issue).await.iter().any(|m| {
            m["kind"] == "reply"
                && m["delivery"]["status"] != "queued"
                && m["delivery"]["error"].is_null()
        })
    })
    .await;
    app.stop().await;
}

async fn reply_files_go_as_email_attachments(b: Backend) {
    let sink = crate::smtp_sink::SmtpSink::start();
    let app = crate::email_out::app_with_smtp(b, &sink).await;
    let r = app
        .request(
            reqwest::Method::PUT,
            "/api/me/preferences",
            Some(&app.admin_token),
            Some(json!({"issue_opened": {"email": false}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let (_, ann) = staff_session(&app, "ann@example.test", "agent").await;
    let r = app
        .post(
            "/api/issues",
            &app.admin_token,
            json!({"contact": "jane@example.test", "subject": "Your invoice", "body": "Coming up."}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let issue = r.body["id"].as_i64().unwrap();
    sink.wait_for(1, 10).await;
    let csrf = csrf_of(&app, &ann).await;
    let sent = post_multipart(
        &app,
        &ann,
        &format!("/issues/{issue}/reply"),
        &[("csrf", &csrf), ("body", "Invoice attached.")],
        &[("invoice.pdf", "application/pdf", b"%PDF-1.4 invoice")],
    )
    .await;
    redirected_to(&sent, &format!("/issues/{issue}#m"));
    let got = sink.wait_for(2, 10).await;
    let mail = mail_parser::MessageParser::default()
        .parse(got[1].raw.as_bytes())
        .expect("a parsable reply");
    assert_eq!(
        mail.subject().unwrap_or_default(),
        format!("Re: Your invoice [#{issue}]")
    );
    assert_eq!(
        mail.body_text(0).unwrap_or_default().trim(),
        "Invoice attached."
    );
    assert_eq!(mail.attachment_count(), 1);
    let a = mail.attachment(0).unwrap();
    assert_eq!(
        mail_parser::MimeHeaders::attachment_name(a),
        Some("invoice.pdf")
    );
    assert_eq!(a.contents(), b"%PDF-1.4 invoice".as_slice());
    app.stop().await;
}

async fn reply_to_an_opted_out_customer_is_refused_with_a_sentence(b: Backend) {
    let app = spawn_app(b).await;
    let (_, ann) = staff_session(&app, "ann@example.test", "agent").await;
    let from = phone();
    let issue = app.sms_issue(&sid(), &from, "Hello").await;
    assert_eq!(app.sms(&sid(), &from, "STOP").await.status, StatusCode::OK);
    let r = reply(&app, &ann, issue, "Are you there?").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        alert(&r),
        "The customer has opted out of messages on this channel (they texted STOP)."
    );
    // The timeline records it as one line, and View Customer shows it.
    assert!(r.html.contains("The customer opted out of SMS (STOP)"));
    assert!(
        r.html
            .contains("<span class=\"opted-out\">Opted out</span>")
    );
    app.stop().await;
}

async fn comments_add_edit_delete_and_the_five_hour_rule(b: Backend) {
    let app = spawn_app(b).await;
    let (_, ann) = staff_session(&app, "ann@example.test", "agent").await;
    let (_, bob) = staff_session(&app, "bob@example.test", "agent").await;
    let admin = admin_session(&app).await;
    let issue = app.sms_issue(&sid(), &phone(), "Billing question").await;
    let url = format!("/issues/{issue}");
    let page = get_page(&app, &ann, &url).await;
    assert!(
        page.html
            .contains("<label for=\"comment-body\">Private comment</label>")
    );
    assert!(has(&page, "Add comment"));

    let added = post_form(
        &app,
        &ann,
        &format!("{url}/comment"),
        &[("body", "Check the invoice first")],
    )
    .await;
    redirected_to(&added, &format!("{url}#m"));
    let comment = timeline(&app, issue)
        .await
        .into_iter()
        .find(|m| m["kind"] == "comment")
        .expect("comment");
    let cid = comment["id"].as_i64().unwrap();

    let page = get_page(&app, &ann, &url).await;
    assert!(page.html.contains("<span class=\"private\">Private</span>"));
    assert!(
        has(&page, "Edit") && has(&page, "Delete"),
        "author may change it"
    );
    assert!(has(&page, "Save"));
    let other = get_page(&app, &bob, &url).await;
    assert!(!has(&other, "Edit") && !has(&other, "Delete"));

    // Another agent is refused with a sentence.
    let r = post_form(
        &app,
        &bob,
        &format!("/messages/{cid}/edit"),
        &[("body", "hijacked")],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        alert(&r),
        "Only the comment's author (within 5 hours) or an admin can change it."
    );
    let r = post_form(&app, &bob, &format!("/messages/{cid}/delete"), &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // The author edits it: shown as edited.
    redirected_to(
        &post_form(
            &app,
            &ann,
            &format!("/messages/{cid}/edit"),
            &[("body", "Check the March invoice first")],
        )
        .await,
        &url,
    );
    let page = get_page(&app, &ann, &url).await;
    assert!(page.html.contains("Check the March invoice first"));
    assert!(page.html.contains("<span class=\"edited\">edited</span>"));

    // Six hours later the author may not; an admin still may.
    app.db
        .exec_at(
            "UPDATE messages SET created_at = $1 WHERE id = $2",
            Utc::now() - Duration::hours(6),
            cid,
        )
        .await;
    let page = get_page(&app, &ann, &url).await;
    assert!(!has(&page, "Edit") && !has(&page, "Delete"));
    let r = post_form(
        &app,
        &ann,
        &format!("/messages/{cid}/edit"),
        &[("body", "late")],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(alert(&r), "Comments can only be changed within 5 hours.");
    assert!(has(&get_page(&app, &admin, &url).await, "Delete"));
    redirected_to(
        &post_form(&app, &admin, &format!("/messages/{cid}/delete"), &[]).await,
        &url,
    );
    assert!(
        timeline(&app, issue)
            .await
            .iter()
            .all(|m| m["kind"] != "comment")
    );
    // Replies are never editable from the page either.
    let customer_msg = timeline(&app, issue).await[0]["id"].as_i64().unwrap();
    let r = post_form(
        &app,
        &admin,
        &format!("/messages/{customer_msg}/edit"),
        &[("body", "rewritten")],
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    app.stop().await;
}

async fn new_messages_line_sits_before_the_first_unread_and_opening_marks_read(b: Backend) {
    let app = spawn_app(b).await;
    let (_, ann) = staff_session(&app, "ann@example.test", "agent").await;
    let from = phone();
    let issue = app.sms_issue(&sid(), &from, "First message").await;
    let url = format!("/issues/{issue}");
    assert_eq!(unread(&app, &ann, issue).await, true);

    // Never opened: everything is new.
    let page = get_page(&app, &ann, &url).await;
    let line = page.html.find(">New messages<").expect("the line");
    assert!(line < page.html.find("First message</div>").unwrap());
    // Opening marked it read (the API agrees), so the line is gone.
    assert_eq!(unread(&app, &ann, issue).await, false);
    assert!(
        !get_page(&app, &ann, &url)
            .await
            .html
            .contains(">New messages<")
    );

    // Ann's own comment is not "new" to her; the customer's next text is.
    post_form(
        &app,
        &ann,
        &format!("{url}/comment"),
        &[("body", "my note")],
    )
    .await;
    app.sms(&sid(), &from, "Second message").await;
    let page = get_page(&app, &ann, &url).await;
    let line = page.html.find(">New messages<").expect("the line");
    assert!(page.html.find("my note</div>").unwrap() < line);
    assert!(line < page.html.find("Second message</div>").unwrap());
    assert_eq!(page.html.matches(">New messages<").count(), 1);

    // The open page keeps it read through POST /issues/{id}/read.
    app.sms(&sid(), &from, "Third").await;
    assert_eq!(unread(&app, &ann, issue).await, true);
    let r = post_form(&app, &ann, &format!("{url}/read"), &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(unread(&app, &ann, issue).await, false);
    app.stop().await;
}

async fn customer_text_is_escaped_never_markup(b: Backend) {
    let app = spawn_app(b).await;
    let (_, ann) = staff_session(&app, "ann@example.test", "agent").await;
    let evil = "<script>alert(1)</script> <img src=x onerror=alert(2)>";
    let issue = app.sms_issue(&sid(), &phone(), evil).await;
    let page = get_page(&app, &ann, &format!("/issues/{issue}")).await;
    assert!(!page.html.contains("<script>alert"), "no live script");
    assert!(!page.html.contains("<img src=x"), "no live image");
    assert!(
        page.html
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;")
    );
    assert!(page.html.contains("&#60;img src=x onerror=alert(2)&#62;"));
    // Also the fragments the live page inserts.
    let frag = get_page(&app, &ann, &format!("/issues/{issue}/timeline?after=0")).await;
    assert!(!frag.html.contains("<script>alert") && !frag.html.contains("<img src=x"));
    let head = get_page(&app, &ann, &format!("/issues/{issue}/head")).await;
    assert!(!head.html.contains("<script>alert"));

    // An email whose HTML part carries script: only the text is shown.
    let raw = "From: Mallory <mallory@example.com>\r\nTo: support@switchboard.test\r\n\
        Subject: <b>hi</b>\r\nMessage-ID: <evil-1@example.com>\r\n\
        Date: Mon, 03 Jun 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n\
        --b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
        Plain words <img src=x onerror=alert(3)>\r\n\
        --b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
        <p>Plain words</p><script>alert(4)</script><img src=x onerror=alert(5)>\r\n\
        --b1--\r\n";
    crate::email_in::ingest_for(&app)
        .ingest("support", 1, raw.as_bytes().to_vec())
        .await
        .expect("ingest");
    let list = app.get("/api/issues?limit=100", &app.admin_token).await;
    let email_issue = list.body["issues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["channel"] == "email")
        .expect("the email issue")["id"]
        .as_i64()
        .unwrap();
    let page = get_page(&app, &ann, &format!("/issues/{email_issue}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.html
            .contains("Plain words &#60;img src=x onerror=alert(3)&#62;")
    );
    for live in [
        "<script>alert",
        "<img src=x",
        "alert(4)",
        "alert(5)",
        "<b>hi</b>",
    ] {
        assert!(!page.html.contains(live), "{live} must not be on the page");
    }
    assert!(
        !page.html.contains("id=\"sms-count\""),
        "no SMS count on email"
    );
    app.stop().await;
}

async fn live_fragments_render_the_same_rows(b: Backend) {
    let app = spawn_app(b).await;
    let (_, ann) = staff_session(&app, "ann@example.test", "agent").await;
    let from = phone();
    let issue = app.sms_issue(&sid(), &from, "Before").await;
    let page = get_page(&app, &ann, &format!("/issues/{issue}")).await;
    let at = page.html.find("data-last-id=\"").unwrap() + 14;
    let last: i64 = page.html[at..at + page.html[at..].find('"').unwrap()]
        .parse()
        .unwrap();
    app.sms(&sid(), &from, "After").await;
    let frag = get_page(
        &app,
        &ann,
        &format!("/issues/{issue}/timeline?after={last}"),
    )
    .await;
    assert_eq!(frag.status, StatusCode::OK);
    assert!(frag.html.contains("After</div>"));
    assert!(!frag.html.contains("Before</div>"));
    assert!(!frag.html.contains("<html"), "a fragment, not a page");
    let one = get_page(
        &app,
        &ann,
        &format!("/issues/{issue}/timeline?message={last}"),
    )
    .await;
    assert!(one.html.contains(&format!("id=\"m{last}\"")));
    let head = get_page(&app, &ann, &format!("/issues/{issue}/head")).await;
    assert!(has(&head, "Take It"));
    assert!(head.html.contains(&format!("#{issue}")));
    // Another issue's message is not served through this issue.
    let other = app.sms_issue(&sid(), &phone(), "Elsewhere").await;
    let other_msg = timeline(&app, other).await[0]["id"].as_i64().unwrap();
    let wrong = get_page(
        &app,
        &ann,
        &format!("/issues/{issue}/timeline?message={other_msg}"),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::NOT_FOUND);
    app.stop().await;
}
