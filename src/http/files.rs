//! Attachments: the files of an issue and their download (SPEC §3.4, §4).
//! Staff only; files are always served as downloads with `nosniff`, so a
//! customer's HTML file can never run in a staff member's browser.
//! Routes are registered with `routes!` from their `#[utoipa::path]`.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiPath, ApiResult, AuthErrors, NotFoundError};
use crate::store::AttachmentView;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(issue_files))
        .routes(routes!(download))
}

/// Every file shared in an issue, images and documents apart.
#[derive(Serialize, ToSchema)]
struct IssueFiles {
    images: Vec<AttachmentView>,
    documents: Vec<AttachmentView>,
}

/// Files shared in an issue
#[utoipa::path(
    get,
    path = "/api/issues/{id}/attachments",
    tag = "attachments",
    params(("id" = i64, Path, description = "Issue id")),
    responses(
        (status = 200, description = "The issue's files", body = IssueFiles),
        NotFoundError,
        AuthErrors,
    )
)]
async fn issue_files(
    State(state): State<AppState>,
    Caller(_): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<IssueFiles>> {
    let (images, documents) = state.store.issue_attachments(id).await?;
    Ok(Json(IssueFiles { images, documents }))
}

/// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266 / 5987).
fn disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .filter(|c| *c != '"' && *c != '\\')
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Download an attachment
///
/// Always as a download (`Content-Disposition: attachment`) with
/// `X-Content-Type-Options: nosniff`, in the content type it was stored with.
#[utoipa::path(
    get,
    path = "/api/attachments/{id}",
    tag = "attachments",
    params(("id" = i64, Path, description = "Attachment id")),
    responses(
        (status = 200, description = "The file's bytes, with its stored `Content-Type`", content_type = "application/octet-stream"),
        NotFoundError,
        AuthErrors,
    )
)]
async fn download(
    State(state): State<AppState>,
    Caller(_): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    let (meta, sha) = state.store.attachment(id).await?;
    let data = state.attachments.read(&sha).await.map_err(|e| {
        tracing::error!(attachment_id = id, error = %e, "attachment file missing");
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the attachment's file is missing",
        )
    })?;
    let mut resp = file_response(&meta, data, "attachment");
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    Ok(resp)
}

/// A stored file's bytes in their stored type, never sniffed; `how` is
/// `attachment` (save it) or `inline` (show it).
fn file_response(meta: &AttachmentView, data: Vec<u8>, how: &str) -> Response {
    let content_type = HeaderValue::from_str(&meta.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let disposition =
        HeaderValue::from_str(&disposition(&meta.filename).replacen("attachment", how, 1))
            .unwrap_or(HeaderValue::from_static("attachment"));
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        Body::from(data),
    )
        .into_response()
}

/// `GET /media/{token}`: a reply's file, for Twilio to fetch when it sends
/// an MMS (it cannot sign in). Outside the API and its documentation: the
/// token is the whole credential, random, single-file and short-lived
/// (`outbox::MEDIA_LINK_TTL`); route metrics and logs only ever see the
/// route template, never the token. Served with `nosniff` and a sandbox
/// CSP, so even a browser that opens it runs nothing.
pub fn media_router() -> axum::Router<AppState> {
    axum::Router::new().route("/media/{token}", axum::routing::get(media))
}

async fn media(
    State(state): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> ApiResult<Response> {
    let gone = || ApiError::not_found("media");
    if token.len() > 128 {
        return Err(gone());
    }
    let (meta, sha) = state.store.media_link(&token).await?.ok_or_else(gone)?;
    let data = state.attachments.read(&sha).await.map_err(|e| {
        tracing::error!(attachment_id = meta.id, error = %e, "a linked media file is missing");
        gone()
    })?;
    tracing::info!(attachment_id = meta.id, "media link fetched");
    let mut resp = file_response(&meta, data, "inline");
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::disposition;

    #[test]
    fn dispositions_are_safe_headers() {
        assert_eq!(
            disposition("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        let d = disposition("Résumé 2026.pdf");
        assert!(
            d.starts_with("attachment; filename=\"R_sum_ 2026.pdf\""),
            "{d}"
        );
        assert!(
            d.contains("filename*=UTF-8''R%C3%A9sum%C3%A9%202026.pdf"),
            "{d}"
        );
    }
}
