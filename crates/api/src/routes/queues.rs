//! The embedded queue: `/v1/queues…`, owner-scoped (names are per owner; an
//! admin names another owner with `?owner=`). A queue exists from its first
//! message on; purging empties it and keeps it.

use axum::extract::State;
use axum::http::StatusCode;
use hotswap_control::NewQueueMessage;
use hotswap_domain::QueueSummary;

use crate::dto::{
    Page, PageQuery, PurgeQueueResponse, QueueOwnerQuery, QueuePath, SendQueueMessageRequest,
    SendQueueMessageResponse,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, Json, NoQuery, Owner, Path, Query};
use crate::AppState;

/// Send a message to one of your queues (created by its first message).
/// 400 names each field broken (`queueName`, `body`, `attributes.NAME`);
/// 413 past 256 KiB (body plus attribute names and values).
#[utoipa::path(post, path = "/v1/queues/{name}/messages", tag = "queues", params(QueuePath, QueueOwnerQuery),
    request_body = SendQueueMessageRequest,
    responses((status = 201, body = SendQueueMessageResponse), (status = 403, body = ApiError), (status = 413, body = ApiError)))]
pub(crate) async fn send(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Owner(owner): Owner,
    _: NoQuery,
    Path(name): Path<String>,
    Json(req): Json<SendQueueMessageRequest>,
) -> ApiResult<(StatusCode, axum::Json<SendQueueMessageResponse>)> {
    let message = NewQueueMessage {
        body: req.body,
        attributes: req.attributes,
    };
    let sent = s
        .control
        .send_queue_message(&caller, owner.as_deref(), &name, message)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(SendQueueMessageResponse {
            message_id: sent.message_id,
        }),
    ))
}

/// Your queues (an admin: every owner's, or `?owner=`'s), by name: `depth`
/// (visible now), `inFlight` (received and not yet back, or delayed) and
/// the age of the oldest message.
#[utoipa::path(get, path = "/v1/queues", tag = "queues", params(PageQuery, QueueOwnerQuery),
    responses((status = 200, body = Page<QueueSummary>)))]
pub(crate) async fn list(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Owner(owner): Owner,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<QueueSummary>>> {
    let queues = s.control.list_queues(&caller, owner.as_deref()).await?;
    Ok(axum::Json(Page::of(
        queues,
        q.limit,
        q.next_token.as_deref(),
    )?))
}

/// One queue; 404 when it never had a message (or is another owner's).
#[utoipa::path(get, path = "/v1/queues/{name}", tag = "queues", params(QueuePath, QueueOwnerQuery),
    responses((status = 200, body = QueueSummary), (status = 404, body = ApiError)))]
pub(crate) async fn get(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Owner(owner): Owner,
    _: NoQuery,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<QueueSummary>> {
    Ok(axum::Json(
        s.control
            .get_queue(&caller, owner.as_deref(), &name)
            .await?,
    ))
}

/// Delete every message of a queue, received ones included; the queue
/// stays, with depth 0. 404 when it never had a message.
#[utoipa::path(delete, path = "/v1/queues/{name}/messages", tag = "queues", params(QueuePath, QueueOwnerQuery),
    responses((status = 200, body = PurgeQueueResponse), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub(crate) async fn purge(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Owner(owner): Owner,
    _: NoQuery,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<PurgeQueueResponse>> {
    let purged = s
        .control
        .purge_queue(&caller, owner.as_deref(), &name)
        .await?;
    Ok(axum::Json(PurgeQueueResponse { purged }))
}
