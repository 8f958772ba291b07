//! The OpenAPI document, generated from the handlers' annotations and the
//! domain types. A committed copy lives at `docs/openapi.json`; a test fails
//! when it drifts.

use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

struct BearerAuth;

/// Adds to every operation the error responses that any `/v1` request can
/// get, so that the handlers' annotations name only their own:
///
/// - 400 `BadRequest` / `ValidationFailed`: a malformed or unknown query
///   parameter, a malformed path parameter;
/// - 401 `Unauthorized`: no token, or an unknown one;
/// - 500 `Internal`: the metadata or blob store failed;
/// - with a request body: 400 for a body that is not what the schema says,
///   413 `PayloadTooLarge` past `--max-body-bytes`, and, for JSON bodies,
///   415 `UnsupportedMediaType` without `Content-Type: application/json`.
///
/// An error status a handler names without a description gets the standard
/// one for it here.
struct CommonErrors;

fn error_response(description: &str) -> utoipa::openapi::Response {
    utoipa::openapi::ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("ApiError")))
                .build(),
        )
        .build()
}

/// The standard description of an error status.
fn error_description(status: &str) -> Option<&'static str> {
    Some(match status {
        "400" => "bad request: a malformed or unknown parameter, or a body that breaks the schema or the rules (`errors` lists every rule broken)",
        "401" => "no `Authorization: Bearer` token, or an unknown one",
        "403" => "the token has no right to change this resource",
        "404" => "no such resource visible to this token",
        "409" => "conflicts with the resource's current state",
        "413" => "the request body is larger than the server's limit (`--max-body-bytes`)",
        "415" => "the body is not `application/json`",
        "429" => "too many concurrent invocations of this version (`MaxInstances`)",
        "500" => "the server failed (detail in its log)",
        "502" => "the invocation failed inside the platform",
        "503" => "the runtime is not available on this runner",
        _ => return None,
    })
}

impl Modify for CommonErrors {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        for item in doc.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                let mut common = vec!["400", "401", "500"];
                if let Some(body) = &op.request_body {
                    common.push("413");
                    if body.content.contains_key("application/json") {
                        common.push("415");
                    }
                }
                let responses = &mut op.responses.responses;
                for status in common {
                    if !responses.contains_key(status) {
                        let text = error_description(status).unwrap_or_default();
                        responses.insert(status.to_owned(), RefOr::T(error_response(text)));
                    }
                }
                for (status, response) in responses.iter_mut() {
                    if let (RefOr::T(r), Some(text)) = (response, error_description(status)) {
                        if r.description.is_empty() {
                            r.description = text.to_owned();
                        }
                    }
                }
            }
        }
    }
}

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
    modifiers(&BearerAuth, &CommonErrors),
    security(("bearer" = [])),
    paths(
        routes::tokens::create, routes::tokens::whoami,
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
    components(schemas(crate::error::ApiError, hotswap_domain::InvocationResult, crate::dto::LogLineSchema, crate::dto::VersionMetricsSchema))
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
