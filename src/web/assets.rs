//! The page's CSS and JavaScript, compiled into the binary and served under
//! names that carry their content hash (`/assets/app.3f2a9c1b.js`), so a
//! browser may cache them forever (`immutable`) and a new build is fetched
//! at once. Miniflux does the same.
//!
//! The sources are small files by concern in `static/css/` and
//! `static/js/`; each kind is joined here into one file, so a page loads
//! one stylesheet and one script. Each script file is wrapped in its own
//! function scope; they share only `window.SB` (from `core.js`).

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// `/assets/<stem>.<hash>.<ext>`
    url: String,
}

const CSS: &str = concat!(
    include_str!("../../static/css/base.css"),
    include_str!("../../static/css/tracker.css"),
    include_str!("../../static/css/issue.css"),
    include_str!("../../static/css/admin.css"),
);

const JS: &str = concat!(
    include_str!("../../static/js/core.js"),
    "\n(function () {\n",
    include_str!("../../static/js/tracker.js"),
    "\n})();\n(function () {\n",
    include_str!("../../static/js/issue.js"),
    "\n})();\n(function () {\n",
    include_str!("../../static/js/admin.js"),
    "\n})();\n",
);

const FILES: &[(&str, &str, &[u8])] = &[
    ("app.css", "text/css; charset=utf-8", CSS.as_bytes()),
    ("app.js", "text/javascript; charset=utf-8", JS.as_bytes()),
];

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(name, content_type, body)| {
            let hash = hex::encode(&Sha256::digest(body)[..6]);
            let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
            Asset {
                name,
                content_type,
                body,
                url: format!("/assets/{stem}.{hash}.{ext}"),
            }
        })
        .collect()
});

/// The hashed URL of an asset by its plain name; "" for an unknown name.
pub fn url(name: &str) -> &'static str {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.url.as_str())
        .unwrap_or("")
}

/// `GET /assets/{file}`: only the current hashed names exist.
pub async fn serve(Path(file): Path<String>) -> Response {
    let wanted = format!("/assets/{file}");
    match ASSETS.iter().find(|a| a.url == wanted) {
        Some(a) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(a.content_type),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
            ],
            a.body,
        )
            .into_response(),
        None => super::page::PageError::not_found().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_a_content_hash() {
        let css = url("app.css");
        assert!(
            css.starts_with("/assets/app.") && css.ends_with(".css"),
            "{css}"
        );
        assert_eq!(css.len(), "/assets/app.".len() + 12 + ".css".len());
        assert_eq!(url("missing.js"), "");
    }

    #[test]
    fn css_and_js_stay_small() {
        let total: usize = FILES.iter().map(|(_, _, b)| b.len()).sum();
        assert!(total < 100 * 1024, "{total} bytes of CSS and JS");
    }
}
