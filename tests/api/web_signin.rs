//! SPEC §9 "Signing in", "Security": passwords, sessions, welcome links,
//! lockout, CSRF and the page's headers, on both backends.

use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, SET_COOKIE};

use crate::helpers::Backend;
use crate::spawn::spawn_app;
use crate::web_support::*;

both_backends!(
    pages_need_a_session_and_send_you_to_sign_in,
    welcome_link_sets_a_password_once,
    short_or_mismatched_passwords_are_refused,
    wrong_credentials_get_one_generic_message,
    ten_failures_lock_the_account_with_429,
    sign_out_ends_the_session,
    cross_site_post_with_only_the_cookie_is_refused,
    session_cookie_reads_the_api_but_never_writes,
    deactivated_staff_lose_their_session,
    pages_carry_a_strict_csp,
    live_stream_ends_on_sign_out_and_deactivation,
);

/// Waits for an open response body to end; false if it is still open
/// after `within`.
async fn ends_within(resp: reqwest::Response, within: std::time::Duration) -> bool {
    use futures::StreamExt;
    let mut body = resp.bytes_stream();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) => return true,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

async fn live_stream_ends_on_sign_out_and_deactivation(backend: Backend) {
    let app = spawn_app(backend).await;
    // The page's stream (session cookie) ends when the session does.
    let cookie = admin_session(&app).await;
    let page_stream = client()
        .get(format!("{}/api/stream", app.base))
        .header(COOKIE, format!("sb_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page_stream.status(), StatusCode::OK);
    assert_eq!(
        post_form(&app, &cookie, "/logout", &[]).await.status,
        StatusCode::SEE_OTHER
    );
    assert!(
        ends_within(page_stream, std::time::Duration::from_secs(10)).await,
        "stream outlived sign-out"
    );
    // A token's stream ends when its owner is deactivated.
    let (id, token) = app.add_staff("Leaving Agent", "agent").await;
    let api_stream = client()
        .get(format!("{}/api/stream", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(api_stream.status(), StatusCode::OK);
    let resp = app
        .request(
            reqwest::Method::PATCH,
            &format!("/api/staff/{id}"),
            Some(&app.admin_token),
            Some(serde_json::json!({"active": false})),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    assert!(
        ends_within(api_stream, std::time::Duration::from_secs(10)).await,
        "stream outlived deactivation"
    );
}

async fn pages_need_a_session_and_send_you_to_sign_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let page = get_page(&app, "nonsense", "/issues?tab=closed").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/login?next=%2Fissues%3Ftab%3Dclosed");
    let login = get_page(&app, "", "/login").await;
    assert_eq!(login.status, StatusCode::OK);
    for label in [
        "<label for=\"email\">Email</label>",
        "<label for=\"password\">Password</label>",
        ">Sign in</button>",
    ] {
        assert!(login.html.contains(label), "login page lacks {label}");
    }
}

async fn welcome_link_sets_a_password_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app
        .db
        .store
        .staff_by_email("admin@localhost")
        .await
        .unwrap()
        .unwrap();
    let code = app.db.store.create_welcome_link(admin.id).await.unwrap();
    let page = client()
        .get(format!("{}/welcome/{code}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    for label in [
        "New password</label>",
        "Repeat password</label>",
        ">Set password</button>",
    ] {
        assert!(html.contains(label), "welcome page lacks {label}");
    }
    let post = |pw: &'static str| {
        client()
            .post(format!("{}/welcome/{code}", app.base))
            .form(&[("password", pw), ("repeat", pw)])
            .send()
    };
    let first = post("a good long password").await.unwrap();
    assert_eq!(first.status(), StatusCode::SEE_OTHER, "the link works once");
    assert!(
        session_from(first.headers()).is_some(),
        "and signs the person in"
    );
    let second = post("another long password").await.unwrap();
    assert_eq!(second.status(), StatusCode::GONE, "but not twice");
    // The first password is the one that counts.
    sign_in(&app, "admin@localhost", "a good long password").await;
    let get_again = client()
        .get(format!("{}/welcome/{code}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(get_again.status(), StatusCode::GONE);
}

async fn short_or_mismatched_passwords_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app
        .db
        .store
        .staff_by_email("admin@localhost")
        .await
        .unwrap()
        .unwrap();
    let code = app.db.store.create_welcome_link(admin.id).await.unwrap();
    for (pw, repeat, says) in [
        ("elevenchars", "elevenchars", "at least 12 characters"),
        ("twelve chars", "twelve charz", "do not match"),
    ] {
        let resp = client()
            .post(format!("{}/welcome/{code}", app.base))
            .form(&[("password", pw), ("repeat", repeat)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(resp.text().await.unwrap().contains(says));
    }
    // The link is still good after a refusal.
    give_password(&app, admin.id, "twelve chars").await;
}

async fn wrong_credentials_get_one_generic_message(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app
        .db
        .store
        .staff_by_email("admin@localhost")
        .await
        .unwrap()
        .unwrap();
    give_password(&app, admin.id, "the right password").await;
    let mut bodies = Vec::new();
    for (email, pw) in [
        ("admin@localhost", "the wrong password"),
        ("nobody@example.com", "the right password"),
    ] {
        let resp = client()
            .post(format!("{}/login", app.base))
            .form(&[("email", email), ("password", pw)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(session_from(resp.headers()).is_none());
        let html = resp.text().await.unwrap();
        assert!(html.contains("Wrong email or password."));
        bodies.push(html.replace(email, ""));
    }
    assert_eq!(
        bodies[0], bodies[1],
        "an unknown email reads like a wrong password"
    );
}

async fn ten_failures_lock_the_account_with_429(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app
        .db
        .store
        .staff_by_email("admin@localhost")
        .await
        .unwrap()
        .unwrap();
    give_password(&app, admin.id, "the right password").await;
    let attempt = |pw: &'static str| {
        client()
            .post(format!("{}/login", app.base))
            .form(&[("email", "admin@localhost"), ("password", pw)])
            .send()
    };
    for _ in 0..10 {
        assert_eq!(
            attempt("wrong").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let locked = attempt("the right password").await.unwrap();
    assert_eq!(
        locked.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert!(locked.text().await.unwrap().contains("15 minutes"));
}

async fn sign_out_ends_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let cookie = admin_session(&app).await;
    assert_eq!(get_page(&app, &cookie, "/").await.status, StatusCode::OK);
    let out = post_form(&app, &cookie, "/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let cleared = out
        .headers
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    // The old cookie no longer works, even if a browser kept it.
    assert_eq!(
        get_page(&app, &cookie, "/").await.status,
        StatusCode::SEE_OTHER
    );
    let api = client()
        .get(format!("{}/api/me", app.base))
        .header(COOKIE, format!("sb_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
}

async fn cross_site_post_with_only_the_cookie_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let cookie = admin_session(&app).await;
    let csrf = csrf_of(&app, &cookie).await;
    // No token: refused, even from our own origin.
    let no_token = client()
        .post(format!("{}/logout", app.base))
        .header(COOKIE, format!("sb_session={cookie}"))
        .form(&[("x", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    // The right token from another site's page: refused too.
    let other_site = client()
        .post(format!("{}/logout", app.base))
        .header(COOKIE, format!("sb_session={cookie}"))
        .header("Origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(other_site.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        get_page(&app, &cookie, "/").await.status,
        StatusCode::OK,
        "still signed in"
    );
    // Token and our own host as Origin: accepted.
    let ours = client()
        .post(format!("{}/logout", app.base))
        .header(COOKIE, format!("sb_session={cookie}"))
        .header("Origin", app.base.as_str())
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(ours.status(), StatusCode::SEE_OTHER);
}

async fn session_cookie_reads_the_api_but_never_writes(backend: Backend) {
    let app = spawn_app(backend).await;
    let cookie = admin_session(&app).await;
    let get = client()
        .get(format!("{}/api/me", app.base))
        .header(COOKIE, format!("sb_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::OK);
    let post = client()
        .post(format!("{}/api/staff", app.base))
        .header(COOKIE, format!("sb_session={cookie}"))
        .json(&serde_json::json!({"email": "x@example.com", "name": "X", "role": "agent"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        post.status(),
        StatusCode::UNAUTHORIZED,
        "a cookie never authorises an API write"
    );
    // Bearer tokens keep working, in any case of the scheme.
    let bearer = client()
        .get(format!("{}/api/me", app.base))
        .header("Authorization", format!("BEARER {}", app.admin_token))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::OK);
}

async fn deactivated_staff_lose_their_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, cookie) = staff_session(&app, "agent@example.com", "agent").await;
    assert_eq!(get_page(&app, &cookie, "/").await.status, StatusCode::OK);
    let resp = app
        .request(
            reqwest::Method::PATCH,
            &format!("/api/staff/{id}"),
            Some(&app.admin_token),
            Some(serde_json::json!({"active": false})),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(
        get_page(&app, &cookie, "/").await.status,
        StatusCode::SEE_OTHER
    );
}

async fn pages_carry_a_strict_csp(backend: Backend) {
    let app = spawn_app(backend).await;
    let cookie = admin_session(&app).await;
    for path in ["/login", "/"] {
        let page = get_page(&app, &cookie, path).await;
        let csp = page
            .headers
            .get(CONTENT_SECURITY_POLICY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(
            page.headers
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff")
        );
        assert!(
            !page.html.contains("<script>"),
            "{path} has an inline script"
        );
    }
}
