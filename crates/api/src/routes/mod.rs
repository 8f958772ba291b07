//! Route table of `/v1`.

use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

pub(crate) mod aliases;
pub(crate) mod deployments;
pub(crate) mod fn_http;
pub(crate) mod functions;
pub(crate) mod invoke;
pub(crate) mod layers;
pub(crate) mod network;
pub(crate) mod queues;
pub(crate) mod runners;
pub(crate) mod tokens;
pub(crate) mod triggers;
pub(crate) mod versions;

pub(crate) fn v1() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(crate::openapi::serve))
        .route("/tokens", post(tokens::create).get(tokens::list))
        .route(
            "/tokens/{token_id}",
            get(tokens::get).delete(tokens::revoke),
        )
        .route("/whoami", get(tokens::whoami))
        .route("/status", get(runners::status))
        .route("/functions", post(functions::create).get(functions::list))
        .route(
            "/functions/{name}",
            get(functions::get)
                .patch(functions::update)
                .delete(functions::delete),
        )
        .route(
            "/functions/{name}/code",
            axum::routing::put(functions::update_code),
        )
        .route("/functions/{name}/invoke", post(invoke::invoke))
        .route("/functions/{name}/logs", get(invoke::logs))
        .route(
            "/functions/{name}/invocations",
            get(invoke::list_invocations),
        )
        .route("/functions/{name}/metrics", get(invoke::metrics))
        .route("/functions/{name}/instances", get(invoke::instances))
        .route(
            "/functions/{name}/versions",
            post(versions::publish).get(versions::list),
        )
        .route(
            "/functions/{name}/versions/{version}",
            get(versions::get)
                .patch(versions::update)
                .delete(versions::delete),
        )
        .route(
            "/functions/{name}/aliases",
            post(aliases::create).get(aliases::list),
        )
        .route(
            "/functions/{name}/aliases/{alias}",
            get(aliases::get)
                .put(aliases::update)
                .patch(aliases::patch)
                .delete(aliases::delete),
        )
        .route(
            "/functions/{name}/deployments",
            post(deployments::create).get(deployments::list),
        )
        .route("/functions/{name}/deployments/{id}", get(deployments::get))
        .route(
            "/functions/{name}/deployments/{id}/cancel",
            post(deployments::cancel),
        )
        .route(
            "/functions/{name}/deployments/{id}/promote",
            post(deployments::promote),
        )
        .route(
            "/functions/{name}/deployments/{id}/rollback",
            post(deployments::rollback),
        )
        .route("/invocations/{request_id}", get(invoke::get_invocation))
        .route("/layers", post(layers::publish).get(layers::list))
        .route("/layers/{name}/versions", get(layers::versions))
        .route(
            "/layers/{name}/versions/{version}",
            get(layers::get).delete(layers::delete),
        )
        .route("/triggers", post(triggers::create).get(triggers::list))
        .route(
            "/triggers/{id}",
            get(triggers::get)
                .patch(triggers::update)
                .delete(triggers::delete),
        )
        .route(
            "/subnets",
            post(network::create_subnet).get(network::list_subnets),
        )
        .route(
            "/subnets/{id}",
            get(network::get_subnet).delete(network::delete_subnet),
        )
        .route(
            "/security-groups",
            post(network::create_security_group).get(network::list_security_groups),
        )
        .route(
            "/security-groups/{id}",
            get(network::get_security_group)
                .put(network::update_security_group)
                .delete(network::delete_security_group),
        )
        .route("/queues", get(queues::list))
        .route("/queues/{name}", get(queues::get))
        .route(
            "/queues/{name}/messages",
            post(queues::send).delete(queues::purge),
        )
        .route("/runners", post(runners::register).get(runners::list))
        .route("/runners/{node_id}", get(runners::get))
        .route("/runners/{node_id}/heartbeat", post(runners::heartbeat))
}
