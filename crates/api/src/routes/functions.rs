use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, StatusCode};
use bytes::Bytes;
use hotswap_control::FunctionFilter;
use hotswap_control::{FunctionPatch, NewFunction};
use hotswap_domain::Function;

use crate::dto::OwnerQuery;
use crate::dto::{
    CodeInput, CreateFunctionRequest, FunctionName, ListFunctionsQuery, Page, RawBytes,
    UpdateFunctionRequest, VersionResponse,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, FunctionPath, Json, NoQuery, Owner, Query};
use crate::AppState;

fn content_type(req: &Request) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large(
            "request body is larger than the configured limit (--max-body-bytes)",
        )
    } else {
        ApiError::bad_request(format!("invalid multipart body: {}", e.body_text()))
    }
}

/// Reads `metadata` (JSON, the same fields as the JSON request without
/// `code`) and `code` (the zip) from a multipart body.
async fn read_multipart(mut m: Multipart) -> ApiResult<(CreateFunctionRequest, Bytes)> {
    let (mut meta, mut code) = (None, None);
    while let Some(field) = m.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("metadata") => {
                let bytes = field.bytes().await.map_err(multipart_error)?;
                meta = Some(
                    crate::extract::parse_json::<CreateFunctionRequest>(&bytes).map_err(|e| {
                        ApiError::bad_request(format!("invalid metadata part: {}", e.message))
                    })?,
                );
            }
            Some("code") => code = Some(field.bytes().await.map_err(multipart_error)?),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unexpected multipart part {other:?}; expected 'metadata' and 'code'"
                )))
            }
        }
    }
    match (meta, code) {
        (Some(meta), Some(code)) if meta.code.is_none() => Ok((meta, code)),
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "give the code either as the 'code' part or in metadata, not both",
        )),
        (None, _) => Err(ApiError::bad_request(
            "multipart body lacks the 'metadata' part",
        )),
        (_, None) => Err(ApiError::bad_request(
            "multipart body lacks the 'code' part",
        )),
    }
}

/// Create a function with its code (JSON with base64 `code.zipFile`, or
/// multipart with `metadata` and `code` parts). A function whose runtime no
/// runner has is created with a `Warning` header saying so (its calls
/// answer 503 until a runner has it).
#[utoipa::path(post, path = "/v1/functions", params(OwnerQuery), tag = "functions", request_body = CreateFunctionRequest,
    responses((status = 201, body = Function, headers(
        ("Warning" = String, description = "`299 hotswap \"…\"` when no runner has the function's runtime"))),
        (status = 409, body = ApiError)))]
pub(crate) async fn create(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    Owner(owner): Owner,
    req: Request,
) -> ApiResult<(StatusCode, axum::http::HeaderMap, axum::Json<Function>)> {
    let (body, code) = if content_type(&req).starts_with("multipart/form-data") {
        let m = Multipart::from_request(req, &s)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        read_multipart(m).await?
    } else {
        let Json(body) = Json::<CreateFunctionRequest>::from_request(req, &s).await?;
        let code = body
            .code
            .as_ref()
            .ok_or_else(|| {
                ApiError::validation(vec![
                    "Code is required: give code.zipFile (base64 zip)".into()
                ])
            })?
            .decode()?;
        (body, code)
    };
    let new = NewFunction {
        name: body.name,
        runtime: body.runtime,
        handler: body.handler,
        description: body.description,
        memory_size: body.memory_size,
        timeout: body.timeout,
        environment: body.environment,
        layers: body.layers,
        tags: body.tags,
        vpc_config: body.vpc_config,
        scaling_config: body.scaling_config,
        dead_letter_target: body.dead_letter_target,
    };
    let f = s
        .control
        .create_function(&caller, owner.as_deref(), new, code)
        .await?;
    let mut headers = axum::http::HeaderMap::new();
    if let Some(w) = runtime_warning(&s, &f) {
        if let Ok(v) = axum::http::HeaderValue::from_str(&format!("299 hotswap \"{w}\"")) {
            headers.insert(header::WARNING, v);
        }
    }
    Ok((StatusCode::CREATED, headers, axum::Json(f)))
}

/// Why `f` cannot run on this server's runner, when no runner has its
/// runtime.
fn runtime_warning(s: &AppState, f: &Function) -> Option<String> {
    let catalog = s.router.runner().catalog();
    if catalog.available().contains(&f.runtime) {
        return None;
    }
    Some(format!(
        "runtime {} is not available on any runner (this runner has: {}); its invocations answer 503 until one has it",
        f.runtime,
        catalog
            .available()
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// List functions (yours; admins see all), by name, paged.
#[utoipa::path(get, path = "/v1/functions", tag = "functions", params(ListFunctionsQuery),
    responses((status = 200, body = Page<Function>)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Owner(owner): Owner,
    Query(q): Query<ListFunctionsQuery>,
) -> ApiResult<axum::Json<Page<Function>>> {
    let limit = crate::dto::check_limit(q.limit)?;
    let tag = q.tag.map(|t| match t.split_once('=') {
        Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
        None => (t, None),
    });
    let filter = FunctionFilter {
        owner_id: owner.or(q.owner),
        tag,
        limit,
        after: q.next_token,
    };
    let page = s.control.list_functions(&caller, filter).await?;
    Ok(axum::Json(page.into()))
}

#[utoipa::path(get, path = "/v1/functions/{name}", tag = "functions", params(FunctionName, OwnerQuery),
    responses((status = 200, body = Function), (status = 404, body = ApiError)))]
pub(crate) async fn get(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    FunctionPath(fref): FunctionPath,
) -> ApiResult<axum::Json<Function>> {
    Ok(axum::Json(s.control.get_function(&caller, &fref).await?))
}

/// Change configuration; applies to the function and its `$LATEST`.
#[utoipa::path(patch, path = "/v1/functions/{name}", tag = "functions", params(FunctionName, OwnerQuery), request_body = UpdateFunctionRequest,
    responses((status = 200, body = Function), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub(crate) async fn update(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    FunctionPath(fref): FunctionPath,
    Json(req): Json<UpdateFunctionRequest>,
) -> ApiResult<axum::Json<Function>> {
    let patch = FunctionPatch {
        description: req.description,
        runtime: req.runtime,
        handler: req.handler,
        memory_size: req.memory_size,
        timeout: req.timeout,
        environment: req.environment,
        layers: req.layers,
        tags: req.tags,
        vpc_config: req.vpc_config,
        scaling_config: req.scaling_config,
        dead_letter_target: req.dead_letter_target,
    };
    Ok(axum::Json(
        s.control.update_function(&caller, &fref, patch).await?,
    ))
}

/// Replace `$LATEST`'s code: JSON `{ "zipFile": base64 }` or a raw
/// `application/zip` body.
#[utoipa::path(put, path = "/v1/functions/{name}/code", tag = "functions", params(FunctionName, OwnerQuery),
    request_body(content((CodeInput = "application/json"), (RawBytes = "application/zip"))),
    responses((status = 200, body = VersionResponse), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub(crate) async fn update_code(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    FunctionPath(fref): FunctionPath,
    req: Request,
) -> ApiResult<axum::Json<VersionResponse>> {
    let code = if content_type(&req).starts_with("application/zip")
        || content_type(&req).starts_with("application/octet-stream")
    {
        Bytes::from_request(req, &s).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large(
                    "request body is larger than the configured limit (--max-body-bytes)",
                )
            } else {
                ApiError::bad_request(e.body_text())
            }
        })?
    } else {
        let Json(input) = Json::<CodeInput>::from_request(req, &s).await?;
        input.decode()?
    };
    Ok(axum::Json(
        s.control.update_code(&caller, &fref, code).await?.into(),
    ))
}

/// Delete a function with its versions, aliases, triggers and deployments.
#[utoipa::path(delete, path = "/v1/functions/{name}", tag = "functions", params(FunctionName, OwnerQuery),
    responses((status = 204), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub(crate) async fn delete(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    FunctionPath(fref): FunctionPath,
) -> ApiResult<StatusCode> {
    let deleted = s.control.delete_function(&caller, &fref).await?;
    // Its instances stop now (busy ones when their call ends) and its logs
    // and metrics go with it: a function created again under this name
    // starts from nothing.
    s.router.forget_function(&deleted.function_id);
    Ok(StatusCode::NO_CONTENT)
}
