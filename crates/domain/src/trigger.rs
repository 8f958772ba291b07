//! `Trigger`: an event source bound to a function (HTTP route, schedule,
//! queue, stream), with per-type configuration and validation.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::names::Qualifier;
use crate::time;
use crate::validation::ValidationErrors;

pub mod schedule;
pub mod settings;
pub mod source;
pub mod target;

pub use settings::{QueueSettings, StreamSettings};
pub use source::{StartingPosition, TriggerSource};
pub use target::{DeliveryTarget, InvalidDeliveryTarget};

use settings::{
    MAX_BATCHING_WINDOW_S, MAX_MAXIMUM_CONCURRENCY, MAX_MAX_RECEIVE_COUNT,
    MAX_PARALLELIZATION_FACTOR, MAX_RECORD_AGE_S, MAX_RETRY_ATTEMPTS, MIN_MAXIMUM_CONCURRENCY,
    MIN_RECORD_AGE_S,
};

/// Event trigger types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TriggerType {
    /// HTTP API trigger (GET, POST, etc.).
    #[default]
    Http,
    /// Scheduled trigger (cron/rate expressions).
    Scheduled,
    /// Queue-based trigger (message queue).
    Queue,
    /// Stream-based trigger (Kafka, Kinesis).
    Stream,
}

impl TriggerType {
    pub const ALL: [TriggerType; 4] = [
        TriggerType::Http,
        TriggerType::Scheduled,
        TriggerType::Queue,
        TriggerType::Stream,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerType::Http => "Http",
            TriggerType::Scheduled => "Scheduled",
            TriggerType::Queue => "Queue",
            TriggerType::Stream => "Stream",
        }
    }
}

impl fmt::Display for TriggerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TriggerType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown trigger type '{s}' (Http, Scheduled, Queue, Stream)"))
    }
}

/// Type-specific trigger settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct TriggerConfig {
    // HTTP
    pub http_path: Option<String>,
    pub http_methods: Option<Vec<String>>,
    pub cors_enabled: Option<bool>,
    /// HotSwap: origins answered with `Access-Control-Allow-Origin` (default `["*"]`).
    pub cors_allow_origins: Option<Vec<String>>,
    /// HotSwap: methods a preflight allows (default: the trigger's methods).
    pub cors_allow_methods: Option<Vec<String>>,
    /// HotSwap: request headers a preflight allows (default: those asked for).
    pub cors_allow_headers: Option<Vec<String>>,
    /// HotSwap: seconds a browser may cache a preflight answer (default 600).
    pub cors_max_age: Option<u32>,
    /// HotSwap: `None` (public, default) or `Token` (the owner's bearer token).
    pub auth_type: Option<HttpAuthType>,
    /// HotSwap: most requests per second the trigger admits (429 past it).
    pub rate_limit: Option<u32>,
    // Scheduled
    pub schedule_expression: Option<String>,
    pub timezone: Option<String>,
    // Queue and Stream
    /// HotSwap: what the trigger consumes. Queues: `embedded` (default),
    /// `rabbitmq`, `nats`, `redis`; streams (required): `nats`, `redis`,
    /// `kafka`.
    pub source: Option<TriggerSource>,
    /// Most messages or records per invocation (queues 10, streams 100).
    pub batch_size: Option<u32>,
    /// Read the function's `batchItemFailures` (default false).
    pub report_batch_item_failures: Option<bool>,
    // Queue
    pub queue_name: Option<String>,
    /// Seconds (default 30, at least the function's timeout).
    pub visibility_timeout: Option<u32>,
    /// Longest wait to fill a batch, seconds (0-300, default 0).
    pub maximum_batching_window: Option<u32>,
    /// Receives before a message is dead-lettered (1-1000, default 3).
    pub max_receive_count: Option<u32>,
    /// Most concurrent batches (2-1000; default: the function's limit).
    pub maximum_concurrency: Option<u32>,
    /// `fn:NAME[:QUALIFIER]` or `queue:NAME`: where messages go after
    /// `maxReceiveCount` receives (default: kept in the queue).
    pub dead_letter_target: Option<String>,
    // Stream
    pub stream_arn: Option<String>,
    /// `TRIM_HORIZON`, `LATEST` or `AT_TIMESTAMP` (required for streams).
    pub starting_position: Option<String>,
    /// RFC 3339; required with (and only with) `AT_TIMESTAMP`.
    pub starting_position_timestamp: Option<String>,
    /// Concurrent batches per shard (1-10, default 1).
    pub parallelization_factor: Option<u32>,
    /// Split a failing batch in two before retrying (default false).
    pub bisect_batch_on_function_error: Option<bool>,
    /// -1 (default: until the records expire) or 0-10000.
    pub maximum_retry_attempts: Option<i32>,
    /// -1 (default: no limit) or 60-604800 seconds.
    pub maximum_record_age_in_seconds: Option<i32>,
    /// `fn:NAME[:QUALIFIER]` or `queue:NAME`: where a discarded batch is
    /// described.
    pub on_failure: Option<String>,
}

/// Who may call an HTTP trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum HttpAuthType {
    /// Anyone: a public URL.
    #[default]
    None,
    /// The function's owner (or an admin), with `Authorization: Bearer`.
    Token,
}

/// Longest `corsMaxAge`, seconds (a day; browsers cap it lower).
pub const MAX_CORS_MAX_AGE_S: u32 = 86_400;
/// Highest per-trigger `rateLimit`, requests per second.
pub const MAX_HTTP_RATE_LIMIT: u32 = 1_000_000;

pub const HTTP_METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY", "*",
];
pub const STARTING_POSITIONS: [&str; 3] = ["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"];
pub const MAX_QUEUE_BATCH: u32 = 10_000;
pub const MAX_VISIBILITY_TIMEOUT_S: u32 = 43_200;

/// An event trigger for a function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    pub trigger_id: String,
    pub function_name: String,
    /// HotSwap: the [`Function::function_id`](crate::Function) of its function.
    #[serde(default)]
    pub function_id: String,
    /// Version number, alias or `$LATEST`.
    pub target_version: String,
    #[serde(rename = "type")]
    pub trigger_type: TriggerType,
    pub is_enabled: bool,
    pub config: TriggerConfig,
    pub created_at: DateTime<Utc>,
    pub last_executed_at: Option<DateTime<Utc>>,
    pub execution_count: u64,
    pub failure_count: u64,
    /// HotSwap: when the trigger was last enabled (creation, or a disabled
    /// trigger enabled again). A schedule never fires a tick before it, on
    /// any server, so ticks that passed while it was disabled stay unfired.
    #[serde(default)]
    pub enabled_at: Option<DateTime<Utc>>,
}

impl Trigger {
    pub fn new(
        function_name: impl Into<String>,
        trigger_type: TriggerType,
        config: TriggerConfig,
    ) -> Self {
        Self {
            trigger_id: uuid::Uuid::new_v4().to_string(),
            function_name: function_name.into(),
            function_id: String::new(),
            target_version: crate::names::LATEST.to_owned(),
            trigger_type,
            is_enabled: true,
            config,
            created_at: time::now(),
            last_executed_at: None,
            execution_count: 0,
            failure_count: 0,
            enabled_at: None,
        }
    }

    /// The seed's `IsValid` (its three messages first) and the per-type
    /// checks a trigger needs to actually fire.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let c = &self.config;
        if self.function_name.trim().is_empty() {
            errors.push("FunctionName is required");
        }
        required_settings(self.trigger_type, c, &mut errors);
        if self.target_version.parse::<Qualifier>().is_err() {
            errors.push("TargetVersion must be $LATEST, a version number or an alias name");
        }
        type_settings(self.trigger_type, c, &mut errors);
        errors.extend(foreign_settings(self.trigger_type, c));
        self.check_self_targets(&mut errors);
        errors.into_result()
    }

    /// A dead letter or failure sent back to the trigger's own function or
    /// own embedded queue would only come round again.
    fn check_self_targets(&self, errors: &mut ValidationErrors) {
        let c = &self.config;
        let targets = match self.trigger_type {
            TriggerType::Queue => [("DeadLetterTarget", &c.dead_letter_target)],
            TriggerType::Stream => [("OnFailure", &c.on_failure)],
            _ => return,
        };
        for (field, target) in targets {
            match target.as_deref().map(str::parse::<DeliveryTarget>) {
                Some(Ok(DeliveryTarget::Function { name, .. })) if name == self.function_name => {
                    errors.push(format!("{field} must name another function, not this one"));
                }
                Some(Ok(DeliveryTarget::Queue { name }))
                    if self.trigger_type == TriggerType::Queue
                        && c.source.unwrap_or(TriggerSource::DEFAULT_QUEUE)
                            == TriggerSource::Embedded
                        && c.queue_name.as_deref() == Some(name.as_str()) =>
                {
                    errors.push(format!("{field} must name another queue, not this one"));
                }
                _ => {}
            }
        }
    }

    pub fn is_valid(&self) -> bool {
        self.validate().is_ok()
    }
}

/// Parameters are whole segments (`{id}`), a greedy `{proxy+}` comes last,
/// and no name repeats.
fn check_route_segments(path: &str) -> Result<(), String> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut names = std::collections::BTreeSet::new();
    for (i, seg) in segments.iter().enumerate() {
        if !seg.contains(['{', '}']) {
            if seg.contains('+') {
                return Err(format!("'{seg}': '+' only ends a {{name+}} parameter"));
            }
            continue;
        }
        let inner = seg
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .ok_or_else(|| format!("'{seg}': a parameter is a whole segment, such as {{id}}"))?;
        let (name, greedy) = match inner.strip_suffix('+') {
            Some(n) => (n, true),
            None => (inner, false),
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "'{seg}': a parameter name holds letters, digits, '_' or '-'"
            ));
        }
        if greedy && i + 1 != segments.len() {
            return Err(format!(
                "'{seg}': a greedy parameter must be the last segment"
            ));
        }
        if !names.insert(name) {
            return Err(format!("parameter '{name}' appears twice"));
        }
    }
    Ok(())
}

/// Whether some request path matches both HTTP trigger paths (`{name}`
/// matches one segment, a final `{name+}` one or more). Paths of different
/// owners must never overlap: the most specific route wins, so an
/// overlapping path would take requests meant for another owner's URL.
pub fn http_routes_overlap(a: &str, b: &str) -> bool {
    let segs = |p: &str| -> Vec<String> {
        http_route_shape(p)
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let (a, b) = (segs(a), segs(b));
    let mut i = 0;
    loop {
        match (a.get(i).map(String::as_str), b.get(i).map(String::as_str)) {
            (None, None) => return true,
            // A greedy parameter takes one or more segments.
            (Some("{+}"), Some(_)) | (Some(_), Some("{+}")) => return true,
            (Some(_), None) | (None, Some(_)) => return false,
            (Some(x), Some(y)) => {
                if x != "{}" && y != "{}" && x != y {
                    return false;
                }
            }
        }
        i += 1;
    }
}

/// The shape of an HTTP trigger path, for conflicts: trailing slashes
/// dropped, every `{name}` segment as `{}` and a final `{name+}` as `{+}`
/// (`/orders/{id}/` and `/orders/{oid}` are the same route).
pub fn http_route_shape(path: &str) -> String {
    let shape: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.starts_with('{') && s.ends_with("+}") {
                "{+}"
            } else if s.starts_with('{') && s.ends_with('}') {
                "{}"
            } else {
                s
            }
        })
        .collect();
    format!("/{}", shape.join("/"))
}

/// The seed's "required" messages of a trigger type.
fn required_settings(t: TriggerType, c: &TriggerConfig, errors: &mut ValidationErrors) {
    match t {
        TriggerType::Http if blank(&c.http_path) => {
            errors.push("HttpPath is required for HTTP triggers")
        }
        TriggerType::Scheduled if blank(&c.schedule_expression) => {
            errors.push("ScheduleExpression is required for Scheduled triggers")
        }
        TriggerType::Queue if blank(&c.queue_name) => {
            errors.push("QueueName is required for Queue triggers")
        }
        TriggerType::Stream if blank(&c.stream_arn) => {
            errors.push("StreamArn is required for Stream triggers")
        }
        _ => {}
    }
}

fn type_settings(t: TriggerType, c: &TriggerConfig, errors: &mut ValidationErrors) {
    match t {
        TriggerType::Http => validate_http(c, errors),
        TriggerType::Scheduled => validate_schedule(c, errors),
        TriggerType::Queue => validate_queue(c, errors),
        TriggerType::Stream => validate_stream(c, errors),
    }
}

/// Every message about `c` as the config of a `t` trigger (what does not
/// depend on the trigger's function or version).
pub(crate) fn config_errors(t: TriggerType, c: &TriggerConfig) -> ValidationErrors {
    let mut errors = ValidationErrors::new();
    required_settings(t, c, &mut errors);
    type_settings(t, c, &mut errors);
    errors.extend(foreign_settings(t, c));
    errors
}

fn blank(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(|s| s.trim().is_empty())
}

fn validate_http(c: &TriggerConfig, errors: &mut ValidationErrors) {
    if let Some(path) = c.http_path.as_deref().filter(|p| !p.trim().is_empty()) {
        let chars_ok = path.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~' | b'{' | b'}' | b'+')
        });
        if !path.starts_with('/')
            || !chars_ok
            || path.contains("//")
            || path.split('/').any(|s| s == ".." || s == ".")
        {
            errors.push("HttpPath must start with '/' and hold only letters, digits, '-', '_', '.', '~' and {param} segments");
        } else if let Err(e) = check_route_segments(path) {
            errors.push(format!("HttpPath: {e}"));
        }
    }
    if let Some(age) = c.cors_max_age {
        if age > MAX_CORS_MAX_AGE_S {
            errors.push(format!("CorsMaxAge must be 0-{MAX_CORS_MAX_AGE_S} seconds"));
        }
    }
    if let Some(r) = c.rate_limit {
        if !(1..=MAX_HTTP_RATE_LIMIT).contains(&r) {
            errors.push(format!(
                "RateLimit must be 1-{MAX_HTTP_RATE_LIMIT} requests per second"
            ));
        }
    }
    for (field, list) in [
        ("CorsAllowOrigins", &c.cors_allow_origins),
        ("CorsAllowHeaders", &c.cors_allow_headers),
    ] {
        if let Some(list) = list {
            if list
                .iter()
                .any(|v| v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()))
            {
                errors.push(format!(
                    "{field} entries must be non-empty and printable without spaces"
                ));
            }
        }
    }
    if let Some(methods) = &c.cors_allow_methods {
        for m in methods {
            if !HTTP_METHODS.contains(&m.to_ascii_uppercase().as_str()) {
                errors.push(format!("CorsAllowMethods: unknown method '{m}'"));
            }
        }
    }
    if let Some(methods) = &c.http_methods {
        if methods.is_empty() {
            errors.push("HttpMethods must list at least one method when given");
        }
        for m in methods {
            if !HTTP_METHODS.contains(&m.to_ascii_uppercase().as_str()) {
                errors.push(format!("HttpMethods: unknown method '{m}'"));
            }
        }
    }
}

fn validate_schedule(c: &TriggerConfig, errors: &mut ValidationErrors) {
    if let Some(expr) = c
        .schedule_expression
        .as_deref()
        .filter(|e| !e.trim().is_empty())
    {
        if let Err(e) = schedule::Schedule::parse(expr) {
            errors.push(format!("ScheduleExpression is invalid: {e}"));
        }
    }
    if let Some(tz) = c.timezone.as_deref() {
        if tz.parse::<chrono_tz::Tz>().is_err() {
            errors.push(format!("Timezone '{tz}' is not an IANA time zone name"));
        }
    }
}

fn validate_batch_size(c: &TriggerConfig, errors: &mut ValidationErrors) {
    if let Some(b) = c.batch_size {
        if !(1..=MAX_QUEUE_BATCH).contains(&b) {
            errors.push(format!("BatchSize must be 1-{MAX_QUEUE_BATCH}"));
        }
    }
}

fn validate_target(field: &str, target: &Option<String>, errors: &mut ValidationErrors) {
    if let Some(t) = target.as_deref() {
        if let Err(e) = t.parse::<DeliveryTarget>() {
            errors.push(format!("{field} {e}"));
        }
    }
}

fn validate_queue(c: &TriggerConfig, errors: &mut ValidationErrors) {
    if let Some(s) = c.source.filter(|s| !s.serves_queues()) {
        errors.push(format!(
            "Source '{s}' does not serve Queue triggers (embedded, rabbitmq, nats or redis)"
        ));
    }
    validate_batch_size(c, errors);
    if let Some(v) = c.visibility_timeout {
        if v > MAX_VISIBILITY_TIMEOUT_S {
            errors.push(format!(
                "VisibilityTimeout must be 0-{MAX_VISIBILITY_TIMEOUT_S} seconds"
            ));
        }
    }
    if let Some(w) = c.maximum_batching_window {
        if w > MAX_BATCHING_WINDOW_S {
            errors.push(format!(
                "MaximumBatchingWindow must be 0-{MAX_BATCHING_WINDOW_S} seconds"
            ));
        }
    }
    if let Some(n) = c.max_receive_count {
        if !(1..=MAX_MAX_RECEIVE_COUNT).contains(&n) {
            errors.push(format!("MaxReceiveCount must be 1-{MAX_MAX_RECEIVE_COUNT}"));
        }
    }
    if let Some(n) = c.maximum_concurrency {
        if !(MIN_MAXIMUM_CONCURRENCY..=MAX_MAXIMUM_CONCURRENCY).contains(&n) {
            errors.push(format!(
                "MaximumConcurrency must be {MIN_MAXIMUM_CONCURRENCY}-{MAX_MAXIMUM_CONCURRENCY}"
            ));
        }
    }
    validate_target("DeadLetterTarget", &c.dead_letter_target, errors);
}

fn validate_stream(c: &TriggerConfig, errors: &mut ValidationErrors) {
    match c.source {
        None => errors.push("Source is required for Stream triggers (nats, redis or kafka)"),
        Some(s) if !s.serves_streams() => errors.push(format!(
            "Source '{s}' does not serve Stream triggers (nats, redis or kafka)"
        )),
        Some(_) => {}
    }
    match c.starting_position.as_deref() {
        None => errors.push(
            "StartingPosition is required for Stream triggers (TRIM_HORIZON, LATEST or AT_TIMESTAMP)",
        ),
        Some(p) if !STARTING_POSITIONS.contains(&p) => {
            errors.push("StartingPosition must be TRIM_HORIZON, LATEST or AT_TIMESTAMP")
        }
        Some(_) => {}
    }
    let at_timestamp = c.starting_position.as_deref() == Some("AT_TIMESTAMP");
    match c.starting_position_timestamp.as_deref() {
        None if at_timestamp => errors
            .push("StartingPositionTimestamp is required when StartingPosition is AT_TIMESTAMP"),
        Some(_) if !at_timestamp => errors
            .push("StartingPositionTimestamp applies only when StartingPosition is AT_TIMESTAMP"),
        Some(t) if source::parse_starting_timestamp(t).is_none() => errors.push(
            "StartingPositionTimestamp must be an RFC 3339 date-time, such as 2030-01-01T00:00:00Z",
        ),
        _ => {}
    }
    if let Some(f) = c.parallelization_factor {
        if !(1..=MAX_PARALLELIZATION_FACTOR).contains(&f) {
            errors.push(format!(
                "ParallelizationFactor must be 1-{MAX_PARALLELIZATION_FACTOR}"
            ));
        }
    }
    validate_batch_size(c, errors);
    if let Some(n) = c.maximum_retry_attempts {
        if n != -1 && !(0..=MAX_RETRY_ATTEMPTS).contains(&n) {
            errors.push(format!(
                "MaximumRetryAttempts must be -1 (until the records expire) or 0-{MAX_RETRY_ATTEMPTS}"
            ));
        }
    }
    if let Some(n) = c.maximum_record_age_in_seconds {
        if n != -1 && !(MIN_RECORD_AGE_S..=MAX_RECORD_AGE_S).contains(&n) {
            errors.push(format!(
                "MaximumRecordAgeInSeconds must be -1 (no limit) or {MIN_RECORD_AGE_S}-{MAX_RECORD_AGE_S}"
            ));
        }
    }
    validate_target("OnFailure", &c.on_failure, errors);
}

/// Settings of another trigger type are refused rather than ignored.
fn foreign_settings(t: TriggerType, c: &TriggerConfig) -> ValidationErrors {
    let mut errors = ValidationErrors::new();
    let groups: [(TriggerType, Vec<(&str, bool)>); 4] = [
        (
            TriggerType::Http,
            vec![
                ("HttpPath", c.http_path.is_some()),
                ("HttpMethods", c.http_methods.is_some()),
                ("CorsEnabled", c.cors_enabled.is_some()),
                ("CorsAllowOrigins", c.cors_allow_origins.is_some()),
                ("CorsAllowMethods", c.cors_allow_methods.is_some()),
                ("CorsAllowHeaders", c.cors_allow_headers.is_some()),
                ("CorsMaxAge", c.cors_max_age.is_some()),
                ("AuthType", c.auth_type.is_some()),
                ("RateLimit", c.rate_limit.is_some()),
            ],
        ),
        (
            TriggerType::Scheduled,
            vec![
                ("ScheduleExpression", c.schedule_expression.is_some()),
                ("Timezone", c.timezone.is_some()),
            ],
        ),
        (
            TriggerType::Queue,
            vec![
                ("QueueName", c.queue_name.is_some()),
                ("VisibilityTimeout", c.visibility_timeout.is_some()),
                ("MaximumBatchingWindow", c.maximum_batching_window.is_some()),
                ("MaxReceiveCount", c.max_receive_count.is_some()),
                ("MaximumConcurrency", c.maximum_concurrency.is_some()),
                ("DeadLetterTarget", c.dead_letter_target.is_some()),
            ],
        ),
        (
            TriggerType::Stream,
            vec![
                ("StreamArn", c.stream_arn.is_some()),
                ("StartingPosition", c.starting_position.is_some()),
                (
                    "StartingPositionTimestamp",
                    c.starting_position_timestamp.is_some(),
                ),
                ("ParallelizationFactor", c.parallelization_factor.is_some()),
                (
                    "BisectBatchOnFunctionError",
                    c.bisect_batch_on_function_error.is_some(),
                ),
                ("MaximumRetryAttempts", c.maximum_retry_attempts.is_some()),
                (
                    "MaximumRecordAgeInSeconds",
                    c.maximum_record_age_in_seconds.is_some(),
                ),
                ("OnFailure", c.on_failure.is_some()),
            ],
        ),
    ];
    for (owner, fields) in groups {
        let set: Vec<&str> = fields
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect();
        if !set.is_empty() && owner != t {
            errors.push(format!(
                "{owner} settings do not apply to {t} triggers ({})",
                set.join(", ")
            ));
        }
    }
    if !matches!(t, TriggerType::Queue | TriggerType::Stream) {
        for (name, set) in [
            ("Source", c.source.is_some()),
            ("BatchSize", c.batch_size.is_some()),
            (
                "ReportBatchItemFailures",
                c.report_batch_item_failures.is_some(),
            ),
        ] {
            if set {
                errors.push(format!("{name} does not apply to {t} triggers"));
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests;
