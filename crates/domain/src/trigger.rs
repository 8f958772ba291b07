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
    // Queue
    pub queue_name: Option<String>,
    pub batch_size: Option<u32>,
    /// Seconds.
    pub visibility_timeout: Option<u32>,
    // Stream
    pub stream_arn: Option<String>,
    pub starting_position: Option<String>,
    pub parallelization_factor: Option<u32>,
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
        if self.trigger_type == TriggerType::Http && blank(&c.http_path) {
            errors.push("HttpPath is required for HTTP triggers");
        }
        if self.trigger_type == TriggerType::Scheduled && blank(&c.schedule_expression) {
            errors.push("ScheduleExpression is required for Scheduled triggers");
        }
        if self.trigger_type == TriggerType::Queue && blank(&c.queue_name) {
            errors.push("QueueName is required for Queue triggers");
        }
        if self.trigger_type == TriggerType::Stream && blank(&c.stream_arn) {
            errors.push("StreamArn is required for Stream triggers");
        }
        if self.target_version.parse::<Qualifier>().is_err() {
            errors.push("TargetVersion must be $LATEST, a version number or an alias name");
        }
        match self.trigger_type {
            TriggerType::Http => validate_http(c, &mut errors),
            TriggerType::Scheduled => validate_schedule(c, &mut errors),
            TriggerType::Queue => validate_queue(c, &mut errors),
            TriggerType::Stream => validate_stream(c, &mut errors),
        }
        errors.extend(foreign_settings(self.trigger_type, c));
        errors.into_result()
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

fn validate_queue(c: &TriggerConfig, errors: &mut ValidationErrors) {
    if let Some(b) = c.batch_size {
        if !(1..=MAX_QUEUE_BATCH).contains(&b) {
            errors.push(format!("BatchSize must be 1-{MAX_QUEUE_BATCH}"));
        }
    }
    if let Some(v) = c.visibility_timeout {
        if v > MAX_VISIBILITY_TIMEOUT_S {
            errors.push(format!(
                "VisibilityTimeout must be 0-{MAX_VISIBILITY_TIMEOUT_S} seconds"
            ));
        }
    }
}

fn validate_stream(c: &TriggerConfig, errors: &mut ValidationErrors) {
    if let Some(p) = c.starting_position.as_deref() {
        if !STARTING_POSITIONS.contains(&p) {
            errors.push("StartingPosition must be TRIM_HORIZON, LATEST or AT_TIMESTAMP");
        }
    }
    if let Some(f) = c.parallelization_factor {
        if !(1..=10).contains(&f) {
            errors.push("ParallelizationFactor must be 1-10");
        }
    }
    if let Some(b) = c.batch_size {
        if !(1..=MAX_QUEUE_BATCH).contains(&b) {
            errors.push(format!("BatchSize must be 1-{MAX_QUEUE_BATCH}"));
        }
    }
}

/// Settings of another trigger type are refused rather than ignored.
fn foreign_settings(t: TriggerType, c: &TriggerConfig) -> ValidationErrors {
    let mut errors = ValidationErrors::new();
    let groups: [(TriggerType, bool); 4] = [
        (
            TriggerType::Http,
            c.http_path.is_some()
                || c.http_methods.is_some()
                || c.cors_enabled.is_some()
                || c.cors_allow_origins.is_some()
                || c.cors_allow_methods.is_some()
                || c.cors_allow_headers.is_some()
                || c.cors_max_age.is_some()
                || c.auth_type.is_some()
                || c.rate_limit.is_some(),
        ),
        (
            TriggerType::Scheduled,
            c.schedule_expression.is_some() || c.timezone.is_some(),
        ),
        (
            TriggerType::Queue,
            c.queue_name.is_some() || c.visibility_timeout.is_some(),
        ),
        (
            TriggerType::Stream,
            c.stream_arn.is_some()
                || c.starting_position.is_some()
                || c.parallelization_factor.is_some(),
        ),
    ];
    for (owner, set) in groups {
        if set && owner != t {
            errors.push(format!("{owner} settings do not apply to {t} triggers"));
        }
    }
    if c.batch_size.is_some() && !matches!(t, TriggerType::Queue | TriggerType::Stream) {
        errors.push(format!("BatchSize does not apply to {t} triggers"));
    }
    errors
}

#[cfg(test)]
mod tests;
