//! Who is looking at a page: the session cookie, and the CSRF check every
//! state change passes (SPEC §9, Security).
//!
//! A session is a random id in the `sb_session` cookie (`HttpOnly`,
//! `SameSite=Lax`, `Secure` when `public_url` is https), stored hashed in
//! the database (`Store::session`). `Viewer` is the extractor for pages:
//! without a live session a GET is redirected to `/login`.
//!
//! CSRF: every non-GET request to a page route goes through `WebForm` or
//! `check_csrf`, which want both
//! - the session's token, in the form field `csrf` or the `X-CSRF-Token`
//!   header (the page's own `fetch` calls), compared in constant time; and
//! - an `Origin` (or, lacking one, `Referer`) that matches `public_url` or
//!   the request's own host, when the browser sent one. Browsers send
//!   `Origin` on every cross-site POST, so a forged form always has one.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::page::PageError;
use crate::http::AppState;
use crate::store::Staff;

/// The session cookie's name.
pub const COOKIE: &str = "sb_session";
/// Header the page's scripts send the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The signed-in staff member looking at a page.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub staff: Staff,
    /// The session's CSRF token, for the page's forms.
    pub csrf: String,
    /// The cookie value (to end this session, or keep it on a password change).
    pub session_id: String,
}

impl Viewer {
    pub fn is_admin(&self) -> bool {
        self.staff.role == crate::domain::Role::Admin
    }
}

/// The session cookie's value, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty() && v.len() < 200)
}

/// The staff member behind a request's session cookie, if it is live.
pub async fn session_staff(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(crate::store::WebSession, String)>, PageError> {
    let Some(id) = session_cookie(headers) else {
        return Ok(None);
    };
    Ok(state.store.session(&id).await?.map(|s| (s, id)))
}

/// `Set-Cookie` for a new session.
pub fn set_cookie(state: &AppState, id: &str) -> HeaderValue {
    let secure = if state.config.server.public_url.starts_with("https:") {
        "; Secure"
    } else {
        ""
    };
    let max_age = crate::domain::signin::SESSION_DAYS * 24 * 3600;
    let value = format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    // Our own token alphabet (base64url): never CR/LF, always a valid value.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("sb_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// Where to send someone who must sign in first, coming back afterwards.
pub fn login_redirect(path_and_query: &str) -> Response {
    let next: String = form_urlencoded::byte_serialize(path_and_query.as_bytes()).collect();
    if path_and_query == "/" {
        Redirect::to("/login").into_response()
    } else {
        Redirect::to(&format!("/login?next={next}")).into_response()
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match session_staff(state, &parts.headers).await {
            Ok(Some((session, id))) => Ok(Viewer {
                staff: session.staff,
                csrf: session.csrf,
                session_id: id,
            }),
            Ok(None) => {
                let target = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                Err(login_redirect(target))
            }
            Err(e) => Err(e.into_response()),
        }
    }
}

/// Whether the request's `Origin` (or `Referer`) is ours: `public_url`'s
/// origin or the request's own `Host`. A request with neither header did
/// not come from a browser form or script on another site.
pub fn origin_ok(state: &AppState, headers: &HeaderMap) -> bool {
    let source = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| *o != "null")
        .map(str::to_string)
        .or_else(|| {
            headers
                .get(header::REFERER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
    let Some(source) = source else {
        // `Origin: null` (sandboxed frames, some redirects) is not ours.
        return headers.get(header::ORIGIN).is_none();
    };
    let Some(source) = origin_of(&source) else {
        return false;
    };
    if origin_of(&state.config.server.public_url).as_deref() == Some(source.as_str()) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (host, source.split_once("://")) {
        (Some(host), Some((_, authority))) => authority.eq_ignore_ascii_case(host),
        _ => false,
    }
}

/// `scheme://host[:port]` of a URL, lower-cased.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() {
        return None;
    }
    Some(format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase()
    ))
}

/// The CSRF check of SPEC §9 for one request: origin, then token.
pub fn check_csrf(
    state: &AppState,
    viewer: &Viewer,
    headers: &HeaderMap,
    form_token: Option<&str>,
) -> Result<(), PageError> {
    if !origin_ok(state, headers) {
        return Err(PageError::csrf());
    }
    let token = form_token.map(str::to_string).or_else(|| {
        headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    });
    match token {
        Some(t) if bool::from(t.as_bytes().ct_eq(viewer.csrf.as_bytes())) => Ok(()),
        _ => Err(PageError::csrf()),
    }
}

/// A form posted by a signed-in viewer that passed the CSRF check: every
/// state-changing page handler takes one. `T` is the form's own fields;
/// the `csrf` field is read here and need not be in `T`.
pub struct WebForm<T> {
    pub viewer: Viewer,
    pub form: T,
}

impl<T> FromRequest<AppState> for WebForm<T>
where
    T: DeserializeOwned + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, super::FORM_LIMIT)
            .await
            .map_err(|_| PageError::too_large().into_response())?;
        let csrf = form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned());
        check_csrf(state, &viewer, &parts.headers, csrf.as_deref())
            .map_err(IntoResponse::into_response)?;
        let form: T = serde_urlencoded_from(&bytes).map_err(|e| {
            PageError::bad_request(format!("The form could not be read: {e}")).into_response()
        })?;
        Ok(WebForm { viewer, form })
    }
}

/// Deserialises a urlencoded body, ignoring fields `T` does not name
/// (`csrf` among them). NUL characters are dropped first: PostgreSQL cannot
/// store them, and no person types one.
fn serde_urlencoded_from<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let clean: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            form_urlencoded::parse(bytes).map(|(k, v)| (k.replace('\0', ""), v.replace('\0', ""))),
        )
        .finish();
    serde_urlencoded::from_str(&clean).map_err(|e| e.to_string())
}

/// The client's address, for the per-client sign-in throttle; `None` when
/// the server was not started with connection info (some tests).
pub struct ClientAddr(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_session_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; sb_session=abc; b=2"),
        );
        assert_eq!(session_cookie(&h).as_deref(), Some("abc"));
        h.insert(header::COOKIE, HeaderValue::from_static("sb_sessionx=abc"));
        assert_eq!(session_cookie(&h), None);
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert_eq!(
            origin_of("http://Example.com:8080/x?y").as_deref(),
            Some("http://example.com:8080")
        );
        assert_eq!(origin_of("https://a.b").as_deref(), Some("https://a.b"));
        assert_eq!(origin_of("nonsense"), None);
    }
}
