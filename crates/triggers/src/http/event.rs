//! The API Gateway HTTP API payload format 2.0 event (what Lambda
//! Function URLs send) built from an HTTP request.
//!
//! Rules:
//! - `headers`: lower-case names, repeated headers joined with `,`,
//!   values not UTF-8 decoded lossily; `cookie` headers are removed and
//!   split on `;` (trimmed, empty pieces dropped) into `cookies`;
//!   `authorization` is removed when [`RequestInfo::strip_authorization`].
//! - `queryStringParameters`: `&`-separated pairs, percent-decoded with `+`
//!   as a space, a key without `=` has the value `""`, repeated keys joined
//!   with `,`.
//! - `body`: absent when empty; text when the content type is textual (or
//!   absent) and the bytes are UTF-8; base64 otherwise, with
//!   `isBase64Encoded: true`.
//! - `cookies`, `queryStringParameters`, `pathParameters`: absent when empty.
//! - `requestContext.time`: `12/Mar/2020:19:03:58 +0000`; `timeEpoch`: ms.

use std::collections::BTreeMap;

use base64::Engine;
use chrono::{DateTime, Datelike, Timelike, Utc};
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, USER_AGENT};
use http::HeaderMap;
use serde::Serialize;

use super::pct;

/// What the event is built from. The caller strips the `/fn` prefix from
/// the path and gives times and ids.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// Request method, e.g. `POST`.
    pub method: &'a str,
    /// The raw (still percent-encoded) path without the `/fn` prefix;
    /// `""` is sent as `/`.
    pub raw_path: &'a str,
    /// The raw query string, without `?` (`""` when none).
    pub raw_query: &'a str,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Request body.
    pub body: &'a [u8],
    /// Client address (`requestContext.http.sourceIp`).
    pub source_ip: &'a str,
    /// E.g. `HTTP/1.1`.
    pub protocol: &'a str,
    /// `requestContext.requestId`.
    pub request_id: &'a str,
    /// When the request arrived.
    pub time: DateTime<Utc>,
    /// The matched route's parameters (`pathParameters`).
    pub path_parameters: Option<&'a BTreeMap<String, String>>,
    /// `routeKey` (e.g. `GET /orders/{id}`, or `$default`).
    pub route_key: &'a str,
    /// `requestContext.domainName`; its first label is the `domainPrefix`.
    pub domain_name: &'a str,
    /// `requestContext.apiId`.
    pub api_id: &'a str,
    /// `requestContext.accountId`.
    pub account_id: &'a str,
    /// Drop the `authorization` header (the platform consumed it).
    pub strip_authorization: bool,
}

/// The payload 2.0 event; serialise it with serde (`serde_json::to_vec`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpEvent {
    /// Always `2.0`.
    pub version: &'static str,
    /// The route key.
    pub route_key: String,
    /// The raw path.
    pub raw_path: String,
    /// The raw query string.
    pub raw_query_string: String,
    /// Cookies of the `cookie` header(s).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cookies: Vec<String>,
    /// Headers, lower-case names, repeated values joined with `,`.
    pub headers: BTreeMap<String, String>,
    /// Decoded query parameters.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub query_string_parameters: BTreeMap<String, String>,
    /// Path parameters of the route.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub path_parameters: BTreeMap<String, String>,
    /// The request context.
    pub request_context: RequestContext,
    /// The body, text or base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Whether `body` is base64.
    pub is_base64_encoded: bool,
}

/// `requestContext` of a 2.0 event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    /// Account id.
    pub account_id: String,
    /// API id.
    pub api_id: String,
    /// Host name the request reached.
    pub domain_name: String,
    /// First label of `domain_name`.
    pub domain_prefix: String,
    /// Method, path, protocol, source address, user agent.
    pub http: HttpContext,
    /// Request id.
    pub request_id: String,
    /// Same as the event's `routeKey`.
    pub route_key: String,
    /// Always `$default`.
    pub stage: &'static str,
    /// `dd/Mon/yyyy:HH:MM:SS +0000`.
    pub time: String,
    /// Milliseconds since the epoch.
    pub time_epoch: i64,
}

/// `requestContext.http` of a 2.0 event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpContext {
    /// Request method.
    pub method: String,
    /// The raw path.
    pub path: String,
    /// E.g. `HTTP/1.1`.
    pub protocol: String,
    /// Client address.
    pub source_ip: String,
    /// The `user-agent` header, `""` when none.
    pub user_agent: String,
}

impl HttpEvent {
    /// The event as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an event has string keys only")
    }
}

/// Builds the payload 2.0 event of a request (rules in the module doc).
pub fn build_event(req: &RequestInfo<'_>) -> HttpEvent {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in req.headers {
        if name == COOKIE {
            let text = String::from_utf8_lossy(value.as_bytes());
            cookies.extend(
                text.split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned),
            );
            continue;
        }
        if req.strip_authorization && name == AUTHORIZATION {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes());
        match headers.get_mut(name.as_str()) {
            Some(existing) => {
                existing.push(',');
                existing.push_str(&value);
            }
            None => {
                headers.insert(name.as_str().to_owned(), value.into_owned());
            }
        }
    }
    let user_agent = req
        .headers
        .get(USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let (body, is_base64_encoded) = encode_body(req.headers, req.body);
    let raw_path = if req.raw_path.is_empty() {
        "/"
    } else {
        req.raw_path
    };
    let domain_prefix = req
        .domain_name
        .split('.')
        .next()
        .unwrap_or_default()
        .to_owned();
    HttpEvent {
        version: "2.0",
        route_key: req.route_key.to_owned(),
        raw_path: raw_path.to_owned(),
        raw_query_string: req.raw_query.to_owned(),
        cookies,
        headers,
        query_string_parameters: parse_query(req.raw_query),
        path_parameters: req.path_parameters.cloned().unwrap_or_default(),
        request_context: RequestContext {
            account_id: req.account_id.to_owned(),
            api_id: req.api_id.to_owned(),
            domain_name: req.domain_name.to_owned(),
            domain_prefix,
            http: HttpContext {
                method: req.method.to_owned(),
                path: raw_path.to_owned(),
                protocol: req.protocol.to_owned(),
                source_ip: req.source_ip.to_owned(),
                user_agent,
            },
            request_id: req.request_id.to_owned(),
            route_key: req.route_key.to_owned(),
            stage: "$default",
            time: clf_time(req.time),
            time_epoch: req.time.timestamp_millis(),
        },
        body,
        is_base64_encoded,
    }
}

/// `12/Mar/2020:19:03:58 +0000` (the common log format API Gateway uses).
pub fn clf_time(t: DateTime<Utc>) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
        t.day(),
        MONTHS[t.month0() as usize],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `queryStringParameters`: decoded (`+` as space), repeated keys joined
/// with `,`, a key without `=` valued `""`, empty pieces skipped.
pub fn parse_query(raw_query: &str) -> BTreeMap<String, String> {
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = pct::decode_lossy(k, true);
        let v = pct::decode_lossy(v, true);
        match params.get_mut(&k) {
            Some(existing) => {
                existing.push(',');
                existing.push_str(&v);
            }
            None => {
                params.insert(k, v);
            }
        }
    }
    params
}

/// Whether a `content-type` denotes text: `text/*`, JSON, XML, JavaScript,
/// form-urlencoded (parameters and case ignored).
pub fn is_textual_content_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    match kind {
        "text" => !sub.is_empty(),
        "application" => {
            matches!(sub, "json" | "xml" | "javascript" | "x-www-form-urlencoded")
                || sub.ends_with("+json")
                || sub.ends_with("+xml")
        }
        _ => false,
    }
}

/// The event's body and `isBase64Encoded` (rules in the module doc).
fn encode_body(headers: &HeaderMap, body: &[u8]) -> (Option<String>, bool) {
    if body.is_empty() {
        return (None, false);
    }
    let textual = headers
        .get(CONTENT_TYPE)
        .is_none_or(|ct| ct.to_str().is_ok_and(is_textual_content_type));
    if textual {
        if let Ok(text) = std::str::from_utf8(body) {
            return (Some(text.to_owned()), false);
        }
    }
    (
        Some(base64::engine::general_purpose::STANDARD.encode(body)),
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use http::HeaderValue;
    use serde_json::json;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    fn info<'a>(h: &'a HeaderMap, body: &'a [u8]) -> RequestInfo<'a> {
        RequestInfo {
            method: "POST",
            raw_path: "/orders/42",
            raw_query: "",
            headers: h,
            body,
            source_ip: "203.0.113.7",
            protocol: "HTTP/1.1",
            request_id: "req-1",
            time: Utc.with_ymd_and_hms(2020, 3, 12, 19, 3, 58).unwrap(),
            path_parameters: None,
            route_key: "POST /orders/{id}",
            domain_name: "abc123.lambda-url.local",
            api_id: "abc123",
            account_id: "000000000000",
            strip_authorization: false,
        }
    }

    #[test]
    fn full_event_shape() {
        let h = headers(&[
            ("Content-Type", b"application/json"),
            ("User-Agent", b"curl/8"),
            ("X-Multi", b"a"),
            ("x-multi", b"b"),
            ("Cookie", b"a=1; b=2;;  c=3 "),
            ("authorization", b"Bearer t"),
        ]);
        let mut params = BTreeMap::new();
        params.insert("id".to_string(), "42".to_string());
        let mut req = info(&h, br#"{"x":1}"#);
        req.raw_query = "q=a+b&q=c%26d&flag&&e=";
        req.path_parameters = Some(&params);
        let event = build_event(&req);
        let v: serde_json::Value = serde_json::from_slice(&event.to_json()).unwrap();
        assert_eq!(
            v,
            json!({
                "version": "2.0",
                "routeKey": "POST /orders/{id}",
                "rawPath": "/orders/42",
                "rawQueryString": "q=a+b&q=c%26d&flag&&e=",
                "cookies": ["a=1", "b=2", "c=3"],
                "headers": {
                    "content-type": "application/json",
                    "user-agent": "curl/8",
                    "x-multi": "a,b",
                    "authorization": "Bearer t"
                },
                "queryStringParameters": {"q": "a b,c&d", "flag": "", "e": ""},
                "pathParameters": {"id": "42"},
                "requestContext": {
                    "accountId": "000000000000",
                    "apiId": "abc123",
                    "domainName": "abc123.lambda-url.local",
                    "domainPrefix": "abc123",
                    "http": {
                        "method": "POST",
                        "path": "/orders/42",
                        "protocol": "HTTP/1.1",
                        "sourceIp": "203.0.113.7",
                        "userAgent": "curl/8"
                    },
                    "requestId": "req-1",
                    "routeKey": "POST /orders/{id}",
                    "stage": "$default",
                    "time": "12/Mar/2020:19:03:58 +0000",
                    "timeEpoch": 1584039838000i64
                },
                "body": "{\"x\":1}",
                "isBase64Encoded": false
            })
        );
    }

    #[test]
    fn optional_fields_absent_when_empty() {
        let h = HeaderMap::new();
        let params = BTreeMap::new();
        let mut req = info(&h, b"");
        req.path_parameters = Some(&params);
        req.raw_path = "";
        let v = serde_json::to_value(build_event(&req)).unwrap();
        let obj = v.as_object().unwrap();
        for absent in ["cookies", "queryStringParameters", "pathParameters", "body"] {
            assert!(!obj.contains_key(absent), "{absent}");
        }
        assert_eq!(v["isBase64Encoded"], false);
        assert_eq!(v["headers"], json!({}));
        assert_eq!(v["rawPath"], "/");
        assert_eq!(v["requestContext"]["http"]["userAgent"], "");
    }

    #[test]
    fn strips_authorization_on_request() {
        let h = headers(&[("authorization", b"Bearer secret"), ("x-a", b"1")]);
        let mut req = info(&h, b"");
        req.strip_authorization = true;
        let e = build_event(&req);
        assert_eq!(e.headers.len(), 1);
        assert_eq!(e.headers["x-a"], "1");
    }

    #[test]
    fn non_utf8_header_values_are_lossy() {
        let h = headers(&[("x-bin", b"a\xffb")]);
        let e = build_event(&info(&h, b""));
        assert_eq!(e.headers["x-bin"], "a\u{FFFD}b");
    }

    #[test]
    fn body_text_or_base64() {
        let cases: &[(Option<&str>, &[u8], bool)] = &[
            (None, b"hello", false),
            (Some("text/plain; charset=utf-8"), b"hello", false),
            (Some("application/json"), b"{}", false),
            (Some("Application/Problem+JSON"), b"{}", false),
            (Some("application/xml"), b"<a/>", false),
            (Some("application/atom+xml"), b"<a/>", false),
            (Some("application/javascript"), b"1", false),
            (Some("application/x-www-form-urlencoded"), b"a=1", false),
            (Some("application/octet-stream"), b"hello", true),
            (Some("image/png"), b"\x89PNG", true),
            (Some("text/plain"), b"\xff\xfe", true),
            (None, b"\xff", true),
        ];
        for (ct, body, b64) in cases {
            let h = match ct {
                Some(ct) => headers(&[("content-type", ct.as_bytes())]),
                None => HeaderMap::new(),
            };
            let e = build_event(&info(&h, body));
            assert_eq!(e.is_base64_encoded, *b64, "{ct:?}");
            let expected = if *b64 {
                base64::engine::general_purpose::STANDARD.encode(body)
            } else {
                String::from_utf8(body.to_vec()).unwrap()
            };
            assert_eq!(e.body.as_deref(), Some(expected.as_str()), "{ct:?}");
        }
    }

    #[test]
    fn textual_content_types() {
        assert!(is_textual_content_type("text/html"));
        assert!(is_textual_content_type(" TEXT/CSV ; x=y"));
        assert!(is_textual_content_type("application/vnd.api+json"));
        assert!(!is_textual_content_type("application/pdf"));
        assert!(!is_textual_content_type("text"));
        assert!(!is_textual_content_type("multipart/form-data; boundary=x"));
    }

    #[test]
    fn time_format() {
        for t in [
            Utc.with_ymd_and_hms(2020, 3, 12, 19, 3, 58).unwrap(),
            Utc.with_ymd_and_hms(2024, 12, 1, 0, 0, 9).unwrap(),
            Utc.with_ymd_and_hms(999, 1, 31, 23, 59, 59).unwrap(),
        ] {
            assert_eq!(
                clf_time(t),
                t.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
                "{t}"
            );
        }
        assert_eq!(
            clf_time(Utc.with_ymd_and_hms(2024, 12, 1, 0, 0, 9).unwrap()),
            "01/Dec/2024:00:00:09 +0000"
        );
    }

    #[test]
    fn query_parsing() {
        let q = parse_query("a=1&b=%E2%9C%93&a=2&c=x=y&%FF=z&=v");
        assert_eq!(q["a"], "1,2");
        assert_eq!(q["b"], "✓");
        assert_eq!(q["c"], "x=y");
        assert_eq!(q["\u{FFFD}"], "z");
        assert_eq!(q[""], "v");
        assert!(parse_query("").is_empty());
        assert!(parse_query("&&").is_empty());
    }

    #[test]
    fn multiple_cookie_headers_are_all_split() {
        let h = headers(&[("cookie", b"a=1"), ("cookie", b"b=2; c=3")]);
        let e = build_event(&info(&h, b""));
        assert_eq!(e.cookies, vec!["a=1", "b=2", "c=3"]);
        assert!(!e.headers.contains_key("cookie"));
    }
}
