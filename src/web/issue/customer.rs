//! View Customer as a page (`GET /customers/{id}`), what the issue page's
//! `View Customer` link opens without script, and Merge
//! (`POST /customers/{id}/merge`, admins only; SPEC §3.5).
//!
//! The dialog on the issue page and this page include the same partial
//! (`issue_customer.html`), so they cannot drift. Merge goes through the
//! store call of `POST /api/customers/{id}/merge`; the page only adds a
//! friendlier way to name the other customer (an id, a phone number or an
//! email address, looked up as ingest would normalise it).

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::parse_id;
use super::view::CustomerBlock;
use crate::domain::Contact;
use crate::http::AppState;
use crate::web::page::{Chrome, PageError, render_status};
use crate::web::session::{Viewer, WebForm};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/customers/{id}", get(page))
        .route("/customers/{id}/merge", post(merge))
}

#[derive(Template)]
#[template(path = "customer.html")]
struct CustomerPage {
    chrome: Chrome,
    customer: CustomerBlock,
    csrf: String,
    alert: Option<String>,
}

async fn show(
    state: &AppState,
    viewer: &Viewer,
    id: i64,
    alert: Option<PageError>,
) -> Result<Response, PageError> {
    let chrome = Chrome::load(state, viewer, "").await?;
    let view = state.store.customer(id, viewer.staff.id).await?;
    let back = format!("/customers/{}", view.id);
    let page = CustomerPage {
        chrome,
        customer: CustomerBlock::new(view, &viewer.staff, &back),
        csrf: viewer.csrf.clone(),
        alert: alert.as_ref().map(|a| a.message.clone()),
    };
    let status = alert.map(|a| a.status).unwrap_or(StatusCode::OK);
    Ok(render_status(status, &page))
}

async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    show(&state, &viewer, parse_id(&id)?, None).await
}

#[derive(Deserialize, Default)]
struct MergeForm {
    #[serde(default)]
    other: String,
    #[serde(default)]
    return_to: String,
}

/// Only our own issue or customer pages: never an address elsewhere.
fn safe_return(to: &str, fallback: String) -> String {
    let ok = ["/issues/", "/customers/"].iter().any(|p| {
        to.strip_prefix(p)
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
    });
    if ok { to.to_string() } else { fallback }
}

/// The customer a person named: `12`, `#12`, a phone number or an email.
async fn find_other(state: &AppState, named: &str) -> Result<i64, PageError> {
    let named = named.trim();
    if let Ok(id) = named.trim_start_matches('#').parse::<i64>()
        && id > 0
        && named.len() < 12
    {
        return Ok(id);
    }
    let unknown = || {
        PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "No customer has that id, phone number or email address.",
        )
    };
    let region = state.config.threading.default_region.as_ref();
    let contact = Contact::parse(named, region).map_err(|_| unknown())?;
    state
        .store
        .customer_by_contact(&contact)
        .await?
        .ok_or_else(unknown)
}

/// `POST /customers/{id}/merge`: the other customer moves into this one.
async fn merge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    WebForm { viewer, form }: WebForm<MergeForm>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let result = async {
        if !viewer.is_admin() {
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                "Only an admin can merge customers.",
            ));
        }
        let other = find_other(&state, &form.other).await?;
        let merged = state
            .store
            .merge_customers(id, other, &viewer.staff)
            .await
            .map_err(|e| match e {
                crate::store::StoreError::NotFound(_) => PageError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "No customer has that id, phone number or email address.",
                ),
                other => PageError::from(other),
            })?;
        tracing::info!(
            into = id,
            from = other,
            by = viewer.staff.id,
            "customers merged (page)"
        );
        Ok(merged.id)
    }
    .await;
    match result {
        Ok(into) => Redirect::to(&safe_return(&form.return_to, format!("/customers/{into}")))
            .into_response(),
        Err(e) if e.status == StatusCode::NOT_FOUND || e.status.is_server_error() => {
            e.into_response()
        }
        Err(e) => match show(&state, &viewer, id, Some(e)).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::safe_return;

    #[test]
    fn merge_returns_only_to_our_own_pages() {
        let fb = || "/customers/1".to_string();
        assert_eq!(safe_return("/issues/42", fb()), "/issues/42");
        assert_eq!(safe_return("/customers/7", fb()), "/customers/7");
        assert_eq!(safe_return("//evil.example", fb()), "/customers/1");
        assert_eq!(safe_return("/issues/42/../x", fb()), "/customers/1");
        assert_eq!(safe_return("https://x/issues/1", fb()), "/customers/1");
        assert_eq!(safe_return("/issues/", fb()), "/customers/1");
    }
}
