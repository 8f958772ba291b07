//! A trigger's CORS policy: answers to preflights and the headers added to
//! real responses.
//!
//! Rules:
//! - A policy exists only when `corsEnabled` is `true`.
//! - Origins: `corsAllowOrigins` (default `["*"]`; a `*` entry allows any).
//!   An origin compares ASCII case-insensitively (scheme and host; a port is
//!   digits, so exact), a configured trailing `/` ignored. Any-origin
//!   answers `Access-Control-Allow-Origin: *`; a list echoes the origin
//!   and adds `Vary: Origin`.
//! - Methods: `corsAllowMethods`, else the trigger's `httpMethods`, else
//!   (or when either holds `ANY`/`*`) [`COMMON_METHODS`]. `HEAD` is allowed
//!   with `GET`.
//! - Headers: `corsAllowHeaders` (a `*` entry or none given: echo the
//!   preflight's `Access-Control-Request-Headers`, adding
//!   `Vary: Access-Control-Request-Headers`).
//! - Max age: `corsMaxAge`, default 600 s.
//! - No `Access-Control-Allow-Credentials` nor `Expose-Headers` (no
//!   setting asks for them).

use hotswap_domain::TriggerConfig;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, VARY,
};
use http::{HeaderName, HeaderValue};

/// Methods allowed when the trigger (or `corsAllowMethods`) allows any.
pub const COMMON_METHODS: [&str; 7] = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"];

/// Default `Access-Control-Max-Age`, seconds.
pub const DEFAULT_MAX_AGE_S: u32 = 600;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Origins {
    Any,
    /// Without trailing slash; compared case-insensitively.
    List(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Headers {
    Echo,
    /// Lower-case.
    List(Vec<String>),
}

/// The CORS policy of an HTTP trigger (rules in the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    origins: Origins,
    /// Upper-case, sorted, de-duplicated.
    methods: Vec<String>,
    /// `methods` joined with `, `.
    methods_value: HeaderValue,
    headers: Headers,
    max_age: u32,
}

fn is_any(m: &str) -> bool {
    m == "ANY" || m == "*"
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl CorsPolicy {
    /// The policy of a trigger, `None` unless `cors_enabled == Some(true)`.
    pub fn from_config(c: &TriggerConfig) -> Option<Self> {
        if c.cors_enabled != Some(true) {
            return None;
        }
        let origins = match &c.cors_allow_origins {
            Some(list) if !list.iter().any(|o| o.trim() == "*") => Origins::List(
                list.iter()
                    .map(|o| {
                        let o = o.trim();
                        o.strip_suffix('/').unwrap_or(o).to_owned()
                    })
                    .collect(),
            ),
            _ => Origins::Any,
        };
        let upper = |list: &[String]| -> Vec<String> {
            list.iter().map(|m| m.trim().to_ascii_uppercase()).collect()
        };
        let listed = c
            .cors_allow_methods
            .as_deref()
            .or(c.http_methods.as_deref())
            .map(upper)
            .filter(|l| !l.is_empty() && !l.iter().any(|m| is_any(m)));
        let mut methods =
            listed.unwrap_or_else(|| COMMON_METHODS.iter().map(|m| m.to_string()).collect());
        if methods.iter().any(|m| m == "GET") {
            methods.push("HEAD".into());
        }
        methods.retain(|m| is_token(m));
        methods.sort();
        methods.dedup();
        let methods_value = HeaderValue::try_from(methods.join(", "))
            .unwrap_or_else(|_| HeaderValue::from_static("GET"));
        let headers = match &c.cors_allow_headers {
            Some(list) if !list.iter().any(|h| h.trim() == "*") => Headers::List(
                list.iter()
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| is_token(h))
                    .collect(),
            ),
            _ => Headers::Echo,
        };
        Some(Self {
            origins,
            methods,
            methods_value,
            headers,
            max_age: c.cors_max_age.unwrap_or(DEFAULT_MAX_AGE_S),
        })
    }

    /// Whether `origin` may read responses.
    pub fn allows_origin(&self, origin: &str) -> bool {
        match &self.origins {
            Origins::Any => true,
            Origins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin.trim())),
        }
    }

    /// Whether a preflight may ask for `method` (case-insensitive).
    pub fn allows_method(&self, method: &str) -> bool {
        self.methods
            .iter()
            .any(|m| m.eq_ignore_ascii_case(method.trim()))
    }

    /// The methods a preflight is answered with (upper-case, sorted).
    pub fn methods(&self) -> &[String] {
        &self.methods
    }

    /// The headers of a `204` answer to a preflight from `origin` asking for
    /// `requested_method` and `requested_headers` (the raw
    /// `Access-Control-Request-Headers`). `None` when the origin or the
    /// method is not allowed: the caller then answers 403 `Forbidden`.
    /// Requested headers outside a configured list do not refuse the
    /// preflight: the answer lists the allowed ones and the browser refuses.
    pub fn preflight(
        &self,
        origin: &str,
        requested_method: &str,
        requested_headers: Option<&str>,
    ) -> Option<Vec<(HeaderName, HeaderValue)>> {
        if !self.allows_origin(origin) || !self.allows_method(requested_method) {
            return None;
        }
        let mut out = Vec::with_capacity(5);
        let mut vary: Vec<&str> = Vec::new();
        out.push((
            ACCESS_CONTROL_ALLOW_ORIGIN,
            self.allow_origin_value(origin)?,
        ));
        if matches!(self.origins, Origins::List(_)) {
            vary.push("Origin");
        }
        out.push((ACCESS_CONTROL_ALLOW_METHODS, self.methods_value.clone()));
        let allow_headers = match &self.headers {
            Headers::Echo => {
                vary.push("Access-Control-Request-Headers");
                requested_headers
                    .unwrap_or_default()
                    .split(',')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| is_token(h))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
            Headers::List(list) => list.join(", "),
        };
        if !allow_headers.is_empty() {
            if let Ok(v) = HeaderValue::try_from(allow_headers) {
                out.push((ACCESS_CONTROL_ALLOW_HEADERS, v));
            }
        }
        out.push((ACCESS_CONTROL_MAX_AGE, HeaderValue::from(self.max_age)));
        if !vary.is_empty() {
            out.push((VARY, HeaderValue::from_str(&vary.join(", ")).ok()?));
        }
        Some(out)
    }

    /// Headers to add to a real (non-preflight) response for a request
    /// with this `Origin` (or none): `Access-Control-Allow-Origin` when the
    /// origin is allowed, and `Vary: Origin` whenever the policy lists
    /// origins (the answer depends on it). Nothing without an `Origin`
    /// under an any-origin policy.
    pub fn response_headers(&self, origin: Option<&str>) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::with_capacity(2);
        if let Some(origin) = origin.filter(|o| self.allows_origin(o)) {
            if let Some(v) = self.allow_origin_value(origin) {
                out.push((ACCESS_CONTROL_ALLOW_ORIGIN, v));
            }
        }
        if matches!(self.origins, Origins::List(_)) {
            out.push((VARY, HeaderValue::from_static("Origin")));
        }
        out
    }

    fn allow_origin_value(&self, origin: &str) -> Option<HeaderValue> {
        match self.origins {
            Origins::Any => Some(HeaderValue::from_static("*")),
            Origins::List(_) => HeaderValue::from_str(origin.trim()).ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Option<Vec<String>> {
        Some(list.iter().map(|s| s.to_string()).collect())
    }

    fn enabled() -> TriggerConfig {
        TriggerConfig {
            http_path: Some("/x".into()),
            cors_enabled: Some(true),
            ..TriggerConfig::default()
        }
    }

    fn pairs(h: &[(HeaderName, HeaderValue)]) -> Vec<(&str, &str)> {
        h.iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect()
    }

    #[test]
    fn only_when_enabled() {
        let mut c = enabled();
        assert!(CorsPolicy::from_config(&c).is_some());
        c.cors_enabled = Some(false);
        assert!(CorsPolicy::from_config(&c).is_none());
        c.cors_enabled = None;
        assert!(CorsPolicy::from_config(&c).is_none());
    }

    #[test]
    fn defaults_any_origin_common_methods_echo_headers() {
        let p = CorsPolicy::from_config(&enabled()).unwrap();
        assert_eq!(p.methods(), COMMON_METHODS);
        let h = p
            .preflight(
                "https://a.example",
                "put",
                Some("X-Custom, content-type ,bad header"),
            )
            .unwrap();
        assert_eq!(
            pairs(&h),
            vec![
                ("access-control-allow-origin", "*"),
                (
                    "access-control-allow-methods",
                    "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
                ),
                ("access-control-allow-headers", "x-custom, content-type"),
                ("access-control-max-age", "600"),
                ("vary", "Access-Control-Request-Headers"),
            ]
        );
        let h = p.preflight("https://a.example", "GET", None).unwrap();
        assert!(!pairs(&h)
            .iter()
            .any(|(n, _)| *n == "access-control-allow-headers"));
        assert_eq!(
            pairs(&p.response_headers(Some("https://a.example"))),
            vec![("access-control-allow-origin", "*")]
        );
        assert!(p.response_headers(None).is_empty());
    }

    #[test]
    fn methods_from_trigger_or_setting() {
        let mut c = enabled();
        c.http_methods = strings(&["get", "POST"]);
        let p = CorsPolicy::from_config(&c).unwrap();
        assert_eq!(p.methods(), ["GET", "HEAD", "POST"]);
        assert!(p.preflight("o", "POST", None).is_some());
        assert!(p.preflight("o", "HEAD", None).is_some());
        assert!(p.preflight("o", "DELETE", None).is_none());
        c.cors_allow_methods = strings(&["DELETE"]);
        let p = CorsPolicy::from_config(&c).unwrap();
        assert_eq!(p.methods(), ["DELETE"]);
        assert!(p.preflight("o", "POST", None).is_none());
        c.cors_allow_methods = strings(&["*"]);
        assert_eq!(
            CorsPolicy::from_config(&c).unwrap().methods(),
            COMMON_METHODS
        );
        c.cors_allow_methods = None;
        c.http_methods = strings(&["ANY"]);
        assert_eq!(
            CorsPolicy::from_config(&c).unwrap().methods(),
            COMMON_METHODS
        );
    }

    #[test]
    fn listed_origins_are_echoed_with_vary() {
        let mut c = enabled();
        c.cors_allow_origins = strings(&["https://App.Example.com/", "http://localhost:3000"]);
        c.cors_allow_headers = strings(&["Content-Type", "X-Api-Key"]);
        c.cors_max_age = Some(0);
        let p = CorsPolicy::from_config(&c).unwrap();
        assert!(p.allows_origin("https://app.example.com"));
        assert!(p.allows_origin("HTTPS://APP.EXAMPLE.COM"));
        assert!(p.allows_origin("http://localhost:3000"));
        assert!(!p.allows_origin("http://localhost:3001"));
        assert!(!p.allows_origin("http://localhost"));
        assert!(!p.allows_origin("https://evil.example.com"));
        assert!(!p.allows_origin("https://app.example.com.evil"));
        let h = p
            .preflight("https://app.example.com", "POST", Some("x-other"))
            .unwrap();
        assert_eq!(
            pairs(&h),
            vec![
                ("access-control-allow-origin", "https://app.example.com"),
                (
                    "access-control-allow-methods",
                    "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
                ),
                ("access-control-allow-headers", "content-type, x-api-key"),
                ("access-control-max-age", "0"),
                ("vary", "Origin"),
            ]
        );
        assert_eq!(p.preflight("https://evil.example.com", "GET", None), None);
        assert_eq!(
            pairs(&p.response_headers(Some("http://localhost:3000"))),
            vec![
                ("access-control-allow-origin", "http://localhost:3000"),
                ("vary", "Origin")
            ]
        );
        assert_eq!(
            pairs(&p.response_headers(Some("https://evil.example.com"))),
            vec![("vary", "Origin")]
        );
        assert_eq!(pairs(&p.response_headers(None)), vec![("vary", "Origin")]);
    }

    #[test]
    fn star_in_lists_means_any() {
        let mut c = enabled();
        c.cors_allow_origins = strings(&["https://a.example", "*"]);
        c.cors_allow_headers = strings(&["*"]);
        let p = CorsPolicy::from_config(&c).unwrap();
        assert!(p.allows_origin("https://b.example"));
        let h = p
            .preflight("https://b.example", "GET", Some("x-a"))
            .unwrap();
        assert_eq!(h[0].1, "*");
        assert!(pairs(&h).contains(&("access-control-allow-headers", "x-a")));
    }
}
