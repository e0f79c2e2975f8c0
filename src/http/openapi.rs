//! `GET /api/openapi.json`: the OpenAPI 3.1 description of the API,
//! generated from the code with utoipa.
//!
//! Every handler carries a `#[utoipa::path]` (method, path, parameters,
//! request body, responses) and every module's `router()` registers its
//! handlers with utoipa-axum's `routes!`, which adds the route to the axum
//! router and the operation to the document in one step. So a route cannot
//! be served without being documented, or documented without being served,
//! and the schemas are derived (`ToSchema`) from the very types the
//! handlers serialize. Earlier this document was a hand-written route table
//! beside the routers; I replaced it because keeping two lists in step was
//! exactly the kind of chore that silently stops happening.
//!
//! This module only adds what belongs to the whole document: `info`, the
//! bearer security scheme (the default for every operation; the public
//! routes clear it with `security(())`), and the `Error` schema that the
//! error responses refer to. The document itself is built once, on first
//! request, from `super::api()`: the same composition `super::router()`
//! serves.

use std::sync::LazyLock;

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ErrorBody;

/// The parts of the document that no handler owns.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard",
        description = "Customer SMS and email in, support issues out. Errors are \
                       `{\"error\": {\"code\", \"message\"}}` (SPEC §4)."
    ),
    modifiers(&BearerToken),
    security(("bearer" = [])),
    components(schemas(ErrorBody))
)]
pub struct ApiDoc;

/// Adds the `bearer` scheme: a staff API token in `Authorization`.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A staff API token (`switchboard token`, or `POST /api/staff/{id}/tokens`)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The whole document, as served.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(|| super::api().into_openapi());
    &DOC
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// This document
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(document())
}
