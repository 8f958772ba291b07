//! `/fn/…`: HTTP triggers, served by the [`Gateway`]. No token unless the
//! trigger says `Token`; the function's own response passes through, and
//! the platform's answers (404, 405, 413, 429, 502, 504) are bare
//! `{"message": …}` bodies, as API Gateway gives them.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use hotswap_control::Principal;
use hotswap_triggers::gateway::{Authenticator, GatewayRequest};
use hotswap_triggers::http::HttpReply;

use crate::AppState;

#[async_trait::async_trait]
impl Authenticator for AppState {
    async fn principal(&self, secret: &str) -> Option<Principal> {
        self.authenticate(secret).await.ok()
    }
}

fn reply(r: HttpReply) -> Response {
    let (parts, body) = r.into_response().into_parts();
    Response::from_parts(parts, Body::from(body))
}

/// Any method on `/fn` and `/fn/{*path}`.
pub(crate) async fn serve(State(s): State<AppState>, req: Request) -> Response {
    let Some(gateway) = s.gateway.clone() else {
        return reply(HttpReply::not_found());
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    let (parts, body) = req.into_parts();
    let raw = parts.uri.path();
    let path = match raw.strip_prefix("/fn") {
        Some("") | None => "/".to_owned(),
        Some(p) => p.to_owned(),
    };
    let query = parts.uri.query().unwrap_or("").to_owned();
    let protocol = match parts.version {
        axum::http::Version::HTTP_10 => "HTTP/1.0",
        axum::http::Version::HTTP_2 => "HTTP/2.0",
        axum::http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    };
    let body = match crate::routes::invoke::read_event(&parts.headers, body, s.payload, false).await
    {
        Ok(b) => b,
        Err(e) if e.status == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            return reply(HttpReply::payload_too_large())
        }
        Err(_) => return reply(HttpReply::bad_request()),
    };
    let request = GatewayRequest {
        method: parts.method,
        path,
        query,
        headers: parts.headers,
        body,
        source_ip: peer,
        protocol: protocol.to_owned(),
    };
    reply(gateway.handle(request, &s).await).into_response()
}
