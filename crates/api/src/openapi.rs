//! The OpenAPI document, generated from the handlers' annotations and the
//! domain types. A committed copy lives at `docs/openapi.json`; a test fails
//! when it drifts.

use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "HotSwap API", description = "Self-hosted serverless functions with live version swaps."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    paths(
        routes::tokens::create, routes::tokens::list, routes::tokens::get, routes::tokens::revoke, routes::tokens::whoami,
        routes::functions::create, routes::functions::list, routes::functions::get, routes::functions::update,
        routes::functions::update_code, routes::functions::delete,
        routes::invoke::invoke, routes::invoke::logs, routes::invoke::metrics, routes::invoke::get_invocation, routes::invoke::list_invocations,
        routes::layers::publish, routes::layers::list, routes::layers::versions, routes::layers::get, routes::layers::delete,
        routes::versions::publish, routes::versions::list, routes::versions::get, routes::versions::update, routes::versions::delete,
        routes::aliases::create, routes::aliases::list, routes::aliases::get, routes::aliases::update, routes::aliases::delete,
        routes::triggers::create, routes::triggers::list, routes::triggers::get, routes::triggers::update, routes::triggers::delete,
        routes::runners::register, routes::runners::heartbeat, routes::runners::list, routes::runners::get,
        routes::deployments::create, routes::deployments::list, routes::deployments::get, routes::deployments::cancel, routes::deployments::promote, routes::deployments::rollback,
    ),
    components(schemas(crate::error::ApiError))
)]
pub struct ApiDoc;

/// The document as pretty JSON (what `docs/openapi.json` holds).
pub fn document_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

pub(crate) async fn serve() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
}
