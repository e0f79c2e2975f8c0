//! View Customer (SPEC §9) as a page and as the issue page's dialog, and
//! Merge (§3.5) with its refusals as sentences, on both backends.

use reqwest::StatusCode;

use super::{alert, has, phone, redirected_to, sid};
use crate::helpers::Backend;
use crate::spawn::spawn_app;
use crate::web_support::*;

both_backends!(view_customer_page_and_dialog, merge_refusals_are_sentences);

async fn view_customer_page_and_dialog(b: Backend) {
    let app = spawn_app(b).await;
    let (_, ann) = staff_session(&app, "ann@example.test", "agent").await;
    let admin = admin_session(&app).await;
    let from = phone();
    let first = app.sms_issue(&sid(), &from, "Old problem").await;
    let api = app
        .get(&format!("/api/issues/{first}"), &app.admin_token)
        .await;
    let customer = api.body["customer"]["id"].as_i64().unwrap();
    redirected_to(
        &post_form(&app, &ann, &format!("/issues/{first}/resolve"), &[]).await,
        &format!("/issues/{first}"),
    );
    let second = app.sms_issue(&sid(), &from, "New problem").await;

    // On the issue page: a button-like link and the dialog, named by the
    // customer's name.
    let page = get_page(&app, &ann, &format!("/issues/{second}")).await;
    assert!(page.html.contains(&format!(
        "<a href=\"/customers/{customer}\" role=\"button\""
    )));
    assert!(page.html.contains(">View Customer</a>"));
    assert!(page.html.contains("<dialog id=\"customer-dialog\""));
    assert!(page.html.contains("aria-labelledby=\"customer-name\""));
    assert!(
        page.html
            .contains(&format!("<h2 id=\"customer-name\">{from}</h2>"))
    );
    assert!(!page.html.contains("Merge customer"), "agents cannot merge");

    // Without script the link opens the same content as a page.
    let cust = get_page(&app, &ann, &format!("/customers/{customer}")).await;
    assert_eq!(cust.status, StatusCode::OK);
    assert!(
        cust.html
            .contains(&format!("<h2 id=\"customer-name\">{from}</h2>"))
    );
    assert!(cust.html.contains(&format!(
        "<span class=\"contact-kind\">Phone</span> {from}</li>"
    )));
    assert!(!cust.html.contains("Opted out"));
    for (id, subject, status) in [
        (first, "Old problem", "Resolved by ann"),
        (second, "New problem", "Unassigned"),
    ] {
        assert!(
            cust.html
                .contains(&format!("<a href=\"/issues/{id}\">#{id} {subject}</a>")),
            "{}",
            cust.html
        );
        assert!(cust.html.contains(status));
    }
    let admin_view = get_page(&app, &admin, &format!("/customers/{customer}")).await;
    assert!(
        admin_view
            .html
            .contains("<label for=\"merge-other\">Merge customer</label>")
    );
    assert!(has(&admin_view, "Merge"));
    assert_eq!(
        get_page(&app, &ann, "/customers/999999").await.status,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

async fn merge_refusals_are_sentences(b: Backend) {
    let app = spawn_app(b).await;
    let (_, ann) = staff_session(&app, "ann@example.test", "agent").await;
    let admin = admin_session(&app).await;
    let (p1, p2) = (phone(), phone());
    let i1 = app.sms_issue(&sid(), &p1, "One").await;
    let i2 = app.sms_issue(&sid(), &p2, "Two").await;
    let cust = |i: i64| {
        let app = &app;
        async move {
            app.get(&format!("/api/issues/{i}"), &app.admin_token)
                .await
                .body["customer"]["id"]
                .as_i64()
                .unwrap()
        }
    };
    let (c1, c2) = (cust(i1).await, cust(i2).await);
    let url = format!("/customers/{c1}/merge");

    let r = post_form(&app, &ann, &url, &[("other", &c2.to_string())]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(alert(&r), "Only an admin can merge customers.");
    let r = post_form(&app, &admin, &url, &[("other", &p2)]).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        alert(&r),
        "Both customers have an open issue. Close one of them first, then merge."
    );
    let r = post_form(&app, &admin, &url, &[("other", "nobody@example.com")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        alert(&r),
        "No customer has that id, phone number or email address."
    );

    // Close one; the merge goes through and returns to the issue page.
    redirected_to(
        &post_form(&app, &admin, &format!("/issues/{i2}/close"), &[]).await,
        &format!("/issues/{i2}"),
    );
    let r = post_form(
        &app,
        &admin,
        &url,
        &[
            ("other", &format!("#{c2}")),
            ("return_to", &format!("/issues/{i1}")),
        ],
    )
    .await;
    redirected_to(&r, &format!("/issues/{i1}"));
    let page = get_page(&app, &admin, &format!("/customers/{c1}")).await;
    assert!(page.html.contains(&p2), "the other's contact moved here");
    assert!(page.html.contains(&format!("#{i2} Two")));
    app.stop().await;
}
