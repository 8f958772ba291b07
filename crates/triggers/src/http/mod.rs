//! HTTP triggers: routes, events, responses, CORS, rate limits.
//!
//! - [`routes`]: the route table (`{param}`, `{proxy+}`, API Gateway
//!   HTTP API selection rules, 404 / 405).
//! - [`event`]: the API Gateway HTTP API payload 2.0 event of a request.
//! - [`response`]: a function's result payload → the HTTP response, and
//!   the platform's own fixed answers.
//! - [`cors`]: a trigger's CORS policy (preflights, response headers).
//! - [`ratelimit`]: the per-trigger token bucket.

pub mod cors;
pub mod event;
mod pct;
pub mod ratelimit;
pub mod response;
pub mod routes;

pub use cors::CorsPolicy;
pub use event::{build_event, HttpEvent, RequestInfo};
pub use ratelimit::RateLimiter;
pub use response::{reply_from_payload, reply_or_502, HttpReply, ReplyError};
pub use routes::{normalise_pattern, PathParams, RouteError, RouteHit, RouteMiss, RouteTable};
