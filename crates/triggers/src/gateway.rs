//! The HTTP gateway: serves every enabled HTTP trigger at `/fn{httpPath}`.
//!
//! Path of one request: the route table (rebuilt when a trigger changes on
//! this server, and at least every [`TABLE_TTL`] for changes made by
//! another) → CORS preflight, or the route (404 / 405) → the trigger's rate
//! limit (429) → the router resolves its target (cached; 404 when the
//! function is gone) → `Token` triggers check the bearer (401 / 403) → the
//! API Gateway v2.0 event → [`Router::invoke`] → the function's result
//! mapped back to HTTP (502 on a function error, 504 on a timeout, 429
//! when throttled). Nothing the platform knows about a failure reaches the
//! client; it goes to the log and the trigger's `state.lastError`.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::Bytes;
use chrono::Utc;
use hotswap_control::{ControlError, Principal};
use hotswap_domain::{HttpAuthType, Trigger, TriggerType};
use hotswap_router::{Call, RouteError, Router, RunnerError};
use http::{HeaderMap, Method};

use crate::http::{
    build_event, reply_or_502, CorsPolicy, HttpReply, RateLimiter, RequestInfo, RouteMiss,
    RouteTable,
};
use crate::stats::{Labels, Outcome, TriggerStats};

/// Longest the route table is used without reading the triggers again:
/// the most a trigger created, changed or deleted through another server
/// sharing the database takes to be served here.
pub const TABLE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Checks bearer tokens for `Token` triggers (the API's token cache).
#[async_trait::async_trait]
pub trait Authenticator: Send + Sync {
    /// The principal behind a bearer secret, or `None` when it is not a
    /// valid tenant or admin token.
    async fn principal(&self, secret: &str) -> Option<Principal>;
}

/// One HTTP request to `/fn/…`.
#[derive(Debug)]
pub struct GatewayRequest {
    pub method: Method,
    /// The raw path after `/fn` (still percent-encoded), starting with `/`.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The client's address.
    pub source_ip: String,
    /// `HTTP/1.1`, `HTTP/2.0`, …
    pub protocol: String,
}

/// A served HTTP trigger.
struct HttpRoute {
    trigger: Trigger,
    cors: Option<CorsPolicy>,
    limiter: Option<Arc<RateLimiter>>,
    auth: HttpAuthType,
}

struct Table {
    epoch: u64,
    loaded: Instant,
    routes: RouteTable<Arc<HttpRoute>>,
}

/// The gateway.
pub struct Gateway {
    router: Arc<Router>,
    stats: Arc<TriggerStats>,
    table: RwLock<Arc<Table>>,
    reload: tokio::sync::Mutex<()>,
    /// Rate limiters by (trigger, rate): they outlive table rebuilds.
    limiters: std::sync::Mutex<std::collections::HashMap<(String, u32), Arc<RateLimiter>>>,
}

fn labels(t: &Trigger) -> Labels<'_> {
    Labels {
        trigger_id: &t.trigger_id,
        kind: "http",
        function: &t.function_name,
        owner: "",
    }
}

impl Gateway {
    pub fn new(router: Arc<Router>, stats: Arc<TriggerStats>) -> Self {
        Self {
            router,
            stats,
            table: RwLock::new(Arc::new(Table {
                epoch: u64::MAX,
                loaded: Instant::now(),
                routes: RouteTable::new(),
            })),
            reload: tokio::sync::Mutex::new(()),
            limiters: std::sync::Mutex::default(),
        }
    }

    fn current(&self) -> Arc<Table> {
        self.table
            .read()
            .map(|t| t.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The table, rebuilt first if a trigger changed on this server since.
    async fn table(&self) -> Result<Arc<Table>, ControlError> {
        let t = self.current();
        if t.epoch == self.router.control().trigger_epoch() {
            return Ok(t);
        }
        match self.rebuild(false).await {
            Ok(t) => Ok(t),
            // The table we have is better than no answer: serve it until
            // the store is back.
            Err(e) if t.epoch != u64::MAX => {
                tracing::warn!(error = %e, "HTTP triggers: cannot rebuild the route table; serving the previous one");
                Ok(t)
            }
            Err(e) => Err(e),
        }
    }

    /// Rebuilds the table from the stored triggers when a trigger changed on
    /// this server or it is older than [`TABLE_TTL`]: the `http-routes`
    /// task calls it every second.
    pub async fn refresh(&self) -> Result<(), ControlError> {
        self.rebuild(true).await.map(|_| ())
    }

    async fn rebuild(&self, force: bool) -> Result<Arc<Table>, ControlError> {
        let _one = self.reload.lock().await;
        let epoch = self.router.control().trigger_epoch();
        let t = self.current();
        if t.epoch == epoch && !(force && t.loaded.elapsed() >= TABLE_TTL) {
            return Ok(t);
        }
        let triggers = self.router.control().store().list_triggers(None).await?;
        let ids: std::collections::HashSet<&str> =
            triggers.iter().map(|t| t.trigger_id.as_str()).collect();
        self.stats.retain(|id| ids.contains(id));
        let mut routes = RouteTable::new();
        let mut kept = std::collections::HashSet::new();
        for trigger in triggers {
            if trigger.trigger_type != TriggerType::Http || !trigger.is_enabled {
                continue;
            }
            let Some(path) = trigger.config.http_path.clone() else {
                continue;
            };
            let limiter = trigger.config.rate_limit.map(|rate| {
                let key = (trigger.trigger_id.clone(), rate);
                kept.insert(key.clone());
                let mut limiters = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
                limiters
                    .entry(key)
                    .or_insert_with(|| Arc::new(RateLimiter::new(rate)))
                    .clone()
            });
            let route = Arc::new(HttpRoute {
                cors: CorsPolicy::from_config(&trigger.config),
                auth: trigger.config.auth_type.unwrap_or_default(),
                limiter,
                trigger,
            });
            let methods = route.trigger.config.http_methods.clone();
            if let Err(e) = routes.insert(&path, methods.as_deref(), route.clone()) {
                // Stored before path rules were enforced, or two servers
                // raced: the older trigger keeps the path.
                tracing::warn!(trigger = %route.trigger.trigger_id, error = %e, "HTTP trigger not served");
                self.stats
                    .error(labels(&route.trigger), format!("not served: {e}"));
            }
        }
        if let Ok(mut limiters) = self.limiters.lock() {
            limiters.retain(|k, _| kept.contains(k));
        }
        let table = Arc::new(Table {
            epoch,
            loaded: Instant::now(),
            routes,
        });
        if let Ok(mut t) = self.table.write() {
            *t = table.clone();
        }
        Ok(table)
    }

    /// Answers one request.
    pub async fn handle(&self, req: GatewayRequest, auth: &dyn Authenticator) -> HttpReply {
        let began = Instant::now();
        let table = match self.table().await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "HTTP triggers: cannot read the route table");
                return HttpReply::service_unavailable();
            }
        };
        let origin = header(&req.headers, "origin").map(str::to_owned);
        // A CORS preflight is answered by the platform, without invoking.
        if req.method == Method::OPTIONS {
            if let (Some(origin), Some(asked)) = (
                origin.as_deref(),
                header(&req.headers, "access-control-request-method"),
            ) {
                if let Some(route) = table.routes.lookup_preflight(&req.path, asked) {
                    if let Some(cors) = &route.cors {
                        let asked_headers = header(&req.headers, "access-control-request-headers");
                        let reply = match cors.preflight(origin, asked, asked_headers) {
                            Some(headers) => HttpReply::no_content(headers),
                            None => HttpReply::forbidden(),
                        };
                        self.log(&req, Some(&route.trigger), reply.status, began, None);
                        return reply;
                    }
                }
            }
        }
        let hit = match table.routes.lookup(&req.path, req.method.as_str()) {
            Ok(hit) => hit,
            Err(RouteMiss::NotFound) => {
                let reply = HttpReply::not_found();
                self.log(&req, None, reply.status, began, None);
                return reply;
            }
            Err(RouteMiss::MethodNotAllowed { allow }) => {
                let reply = HttpReply::method_not_allowed(&allow);
                self.log(&req, None, reply.status, began, None);
                return reply;
            }
        };
        let route = hit.value.clone();
        let t = &route.trigger;
        let now = Utc::now();
        let (mut reply, version) = self.run(&req, &route, &hit, auth, now).await;
        if let (Some(cors), Some(_)) = (&route.cors, &origin) {
            // The platform's CORS answer replaces the function's own
            // (browsers refuse a response with two Allow-Origin headers).
            reply
                .headers
                .retain(|(n, _)| !n.as_str().starts_with("access-control-"));
            reply
                .headers
                .extend(cors.response_headers(origin.as_deref()));
        }
        self.log(&req, Some(t), reply.status, began, version.as_deref());
        reply
    }

    async fn run(
        &self,
        req: &GatewayRequest,
        route: &HttpRoute,
        hit: &crate::http::RouteHit<'_, Arc<HttpRoute>>,
        auth: &dyn Authenticator,
        now: chrono::DateTime<Utc>,
    ) -> (HttpReply, Option<String>) {
        let t = &route.trigger;
        let l = labels(t);
        if let Some(limiter) = &route.limiter {
            if !limiter.try_acquire(Instant::now()) {
                self.stats
                    .record(l, Outcome::Rejected, Some(429), now, false);
                return (HttpReply::too_many_requests(), None);
            }
        }
        let target = match self
            .router
            .resolve_by_id(&t.function_id, &t.target_version)
            .await
        {
            Ok(target) => target,
            Err(RouteError::Control(ControlError::NotFound(m))) => {
                self.stats.error(l, m);
                self.stats.record(l, Outcome::Failed, Some(404), now, false);
                return (HttpReply::not_found(), None);
            }
            Err(e) => {
                tracing::error!(trigger = %t.trigger_id, error = %e, "HTTP trigger: cannot resolve its function");
                self.stats.error(l, e.to_string());
                self.stats.record(l, Outcome::Failed, Some(503), now, true);
                return (HttpReply::service_unavailable(), None);
            }
        };
        let owner = &target.function.owner_id;
        let l = Labels { owner, ..l };
        if route.auth == HttpAuthType::Token {
            let secret = header(&req.headers, "authorization")
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim);
            let Some(secret) = secret.filter(|s| !s.is_empty()) else {
                self.stats
                    .record(l, Outcome::Rejected, Some(401), now, false);
                return (HttpReply::unauthorized(), None);
            };
            match auth.principal(secret).await {
                None => {
                    self.stats
                        .record(l, Outcome::Rejected, Some(401), now, false);
                    return (HttpReply::unauthorized(), None);
                }
                Some(p) if !p.owns(owner) => {
                    self.stats
                        .record(l, Outcome::Rejected, Some(403), now, false);
                    return (HttpReply::forbidden(), None);
                }
                Some(_) => {}
            }
        }
        let request_id = uuid::Uuid::new_v4().to_string();
        let route_key = hit.route_key();
        let domain = header(&req.headers, "host").unwrap_or("localhost");
        let params = (!hit.params.is_empty()).then_some(&hit.params);
        let event = build_event(&RequestInfo {
            method: req.method.as_str(),
            raw_path: &req.path,
            raw_query: &req.query,
            headers: &req.headers,
            body: &req.body,
            source_ip: &req.source_ip,
            protocol: &req.protocol,
            request_id: &request_id,
            time: now,
            path_parameters: params,
            route_key: &route_key,
            domain_name: domain,
            api_id: &t.trigger_id,
            account_id: owner,
            strip_authorization: route.auth == HttpAuthType::Token,
        });
        let mut call = Call::new(Bytes::from(event.to_json()), "application/json");
        call.request_id = Some(request_id);
        let version = target.executed_version();
        let reply = match self.router.invoke(&target, call).await {
            Ok(inv) => match inv.function_error.as_deref() {
                None => {
                    let (reply, bad) = reply_or_502(inv.payload);
                    if let Some(bad) = bad {
                        tracing::warn!(trigger = %t.trigger_id, error = %bad, "HTTP trigger: the function's response is not a valid HTTP response");
                        self.stats.record(l, Outcome::Failed, Some(502), now, true);
                    } else {
                        self.stats.clear_error(&t.trigger_id);
                        self.stats
                            .record(l, Outcome::Succeeded, Some(reply.status), now, true);
                    }
                    reply
                }
                Some("Sandbox.Timedout") => {
                    self.stats.record(l, Outcome::Failed, Some(504), now, true);
                    HttpReply::timeout()
                }
                Some(_) => {
                    self.stats.record(l, Outcome::Failed, Some(502), now, true);
                    HttpReply::internal_error()
                }
            },
            Err(RouteError::Run(RunnerError::TooManyRequests(_))) => {
                self.stats
                    .record(l, Outcome::Rejected, Some(429), now, false);
                HttpReply::too_many_requests()
            }
            Err(e) => {
                tracing::error!(trigger = %t.trigger_id, error = %e, "HTTP trigger: the platform could not run the function");
                self.stats.error(l, e.to_string());
                self.stats.record(l, Outcome::Failed, Some(502), now, true);
                HttpReply::internal_error()
            }
        };
        (reply, Some(version))
    }

    /// One access-log line per request (target `hotswap::access`).
    fn log(
        &self,
        req: &GatewayRequest,
        trigger: Option<&Trigger>,
        status: u16,
        began: Instant,
        version: Option<&str>,
    ) {
        tracing::info!(
            target: "hotswap::access",
            method = %req.method,
            path = %req.path,
            status,
            duration_ms = began.elapsed().as_secs_f64() * 1000.0,
            version = version.unwrap_or("-"),
            trigger = trigger.map_or("-", |t| t.trigger_id.as_str()),
            function = trigger.map_or("-", |t| t.function_name.as_str()),
            source_ip = %req.source_ip,
            "fn request"
        );
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}
