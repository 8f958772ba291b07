use axum::extract::State;
use axum::http::StatusCode;
use hotswap_control::{FunctionRef, NewTrigger};
use hotswap_domain::{Trigger, TriggerType};

use crate::dto::{
    CreateTriggerRequest, ListTriggersQuery, OwnerQuery, Page, TriggerPath, TriggerView,
    UpdateTriggerRequest,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, Json, NoQuery, Owner, Path, Query};
use crate::AppState;

/// The trigger with its URL, next run and state.
pub(crate) fn view(s: &AppState, trigger: Trigger) -> TriggerView {
    let url = (trigger.trigger_type == TriggerType::Http)
        .then_some(trigger.config.http_path.as_deref())
        .flatten()
        .map(|p| format!("{}/fn{p}", s.public_url.trim_end_matches('/')));
    let next_run_at = (trigger.trigger_type == TriggerType::Scheduled)
        .then(|| hotswap_triggers::scheduler::next_run(&trigger, hotswap_domain::time::now()));
    let state = s
        .trigger_stats
        .state(&trigger.trigger_id, trigger.is_enabled);
    TriggerView {
        trigger,
        url,
        next_run_at,
        state,
    }
}

/// Create a trigger, validated per type.
#[utoipa::path(post, path = "/v1/triggers", tag = "triggers", request_body = CreateTriggerRequest,
    responses((status = 201, body = TriggerView), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub(crate) async fn create(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    Json(req): Json<CreateTriggerRequest>,
) -> ApiResult<(StatusCode, axum::Json<TriggerView>)> {
    let new = NewTrigger {
        function_name: req.function_name,
        owner_id: req.owner_id,
        target_version: req.target_version,
        trigger_type: req.trigger_type,
        is_enabled: req.is_enabled,
        config: req.config,
    };
    Ok((
        StatusCode::CREATED,
        axum::Json(view(&s, s.control.create_trigger(&caller, new).await?)),
    ))
}

#[utoipa::path(get, path = "/v1/triggers", tag = "triggers", params(ListTriggersQuery, OwnerQuery),
    responses((status = 200, body = Page<TriggerView>), (status = 404, body = ApiError)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Owner(owner): Owner,
    Query(q): Query<ListTriggersQuery>,
) -> ApiResult<axum::Json<Page<TriggerView>>> {
    let function = q.function_name.map(|name| FunctionRef { owner, name });
    let triggers: Vec<TriggerView> = s
        .control
        .list_triggers(&caller, function.as_ref())
        .await?
        .into_iter()
        .map(|t| view(&s, t))
        .collect();
    Ok(axum::Json(Page::of(
        triggers,
        q.limit,
        q.next_token.as_deref(),
    )?))
}

#[utoipa::path(get, path = "/v1/triggers/{id}", tag = "triggers", params(TriggerPath),
    responses((status = 200, body = TriggerView), (status = 404, body = ApiError)))]
pub(crate) async fn get(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TriggerView>> {
    Ok(axum::Json(view(
        &s,
        s.control.get_trigger(&caller, &id).await?,
    )))
}

/// Enable or disable a trigger.
#[utoipa::path(patch, path = "/v1/triggers/{id}", tag = "triggers", params(TriggerPath), request_body = UpdateTriggerRequest,
    responses((status = 200, body = TriggerView), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub(crate) async fn update(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    Path(id): Path<String>,
    Json(req): Json<UpdateTriggerRequest>,
) -> ApiResult<axum::Json<TriggerView>> {
    let t = s
        .control
        .set_trigger_enabled(&caller, &id, req.is_enabled)
        .await?;
    Ok(axum::Json(view(&s, t)))
}

#[utoipa::path(delete, path = "/v1/triggers/{id}", tag = "triggers", params(TriggerPath),
    responses((status = 204), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub(crate) async fn delete(
    State(s): State<AppState>,
    Caller(caller): Caller,
    _: NoQuery,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.control.delete_trigger(&caller, &id).await?;
    s.trigger_stats.forget(&id);
    Ok(StatusCode::NO_CONTENT)
}
