//! Helpers for driving the staff web page over HTTP as a browser would:
//! sign in with a form, keep the session cookie, read the CSRF token from
//! the page, post forms with it.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, HeaderMap, LOCATION, SET_COOKIE};

use crate::spawn::TestApp;

/// A page response: status, headers and the HTML.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub html: String,
}

impl Page {
    /// Where a redirect points.
    #[allow(dead_code)]
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The session's CSRF token, from `<body data-csrf="…">`.
    pub fn csrf(&self) -> String {
        let at = self
            .html
            .find("data-csrf=\"")
            .expect("page has a CSRF token")
            + 11;
        let end = self.html[at..].find('"').expect("closing quote") + at;
        self.html[at..end].to_string()
    }
}

/// A client that does not follow redirects, so tests see them.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The `sb_session` value a response sets, if any.
pub fn session_from(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("sb_session="))
        .map(|rest| rest.split(';').next().unwrap_or("").to_string())
        .filter(|v| !v.is_empty())
}

/// Gives a staff member a password through a fresh welcome link.
pub async fn give_password(app: &TestApp, staff_id: i64, password: &str) {
    let code = app
        .db
        .store
        .create_welcome_link(staff_id)
        .await
        .expect("welcome link");
    let resp = client()
        .post(format!("{}/welcome/{code}", app.base))
        .form(&[("password", password), ("repeat", password)])
        .send()
        .await
        .expect("welcome post");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "setting a password");
}

/// Signs in and returns the session cookie value.
pub async fn sign_in(app: &TestApp, email: &str, password: &str) -> String {
    let resp = client()
        .post(format!("{}/login", app.base))
        .form(&[("email", email), ("password", password)])
        .send()
        .await
        .expect("login post");
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "signing in as {email}"
    );
    session_from(resp.headers()).expect("a session cookie")
}

/// A staff member with a password, signed in: (staff id, session cookie).
#[allow(dead_code)]
pub async fn staff_session(app: &TestApp, email: &str, role: &str) -> (i64, String) {
    let name = email.split('@').next().unwrap_or(email);
    let resp = app
        .post(
            "/api/staff",
            &app.admin_token,
            serde_json::json!({"email": email, "name": name, "role": role}),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text);
    let id = resp.body["staff"]["id"].as_i64().expect("staff id");
    give_password(app, id, "correct horse battery").await;
    (id, sign_in(app, email, "correct horse battery").await)
}

/// The first admin, with a password, signed in.
#[allow(dead_code)]
pub async fn admin_session(app: &TestApp) -> String {
    let admin = app
        .db
        .store
        .staff_by_email("admin@localhost")
        .await
        .expect("lookup")
        .expect("first admin");
    give_password(app, admin.id, "admin password 1").await;
    sign_in(app, "admin@localhost", "admin password 1").await
}

/// GET a page with the session cookie.
pub async fn get_page(app: &TestApp, cookie: &str, path: &str) -> Page {
    let resp = client()
        .get(format!("{}{}", app.base, path))
        .header(COOKIE, format!("sb_session={cookie}"))
        .send()
        .await
        .expect("get page");
    Page {
        status: resp.status(),
        headers: resp.headers().clone(),
        html: resp.text().await.unwrap_or_default(),
    }
}

/// POST a form with the session cookie and its CSRF token (read from
/// the Issue Tracker, which every signed-in person may open).
#[allow(dead_code)]
pub async fn post_form(app: &TestApp, cookie: &str, path: &str, fields: &[(&str, &str)]) -> Page {
    let csrf = csrf_of(app, cookie).await;
    let mut all: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    let resp = client()
        .post(format!("{}{}", app.base, path))
        .header(COOKIE, format!("sb_session={cookie}"))
        .form(&all)
        .send()
        .await
        .expect("post form");
    Page {
        status: resp.status(),
        headers: resp.headers().clone(),
        html: resp.text().await.unwrap_or_default(),
    }
}

/// The CSRF token of a session, as its pages carry it.
pub async fn csrf_of(app: &TestApp, cookie: &str) -> String {
    let page = get_page(app, cookie, "/").await;
    assert_eq!(page.status, StatusCode::OK, "GET /: {}", page.html);
    page.csrf()
}
