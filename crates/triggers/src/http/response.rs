//! A function's result payload → the HTTP response (Lambda Function URL
//! rules), and the platform's own fixed JSON answers.
//!
//! Rules of [`reply_from_payload`]:
//! - A JSON object with a `statusCode` key is a structured response:
//!   - `statusCode`: an integer 100–599;
//!   - `headers`: an object; string values as given, numbers and booleans
//!     stringified, `null` skipped, anything else an error;
//!   - `multiValueHeaders`: ignored;
//!   - `cookies`: an array of strings, one `set-cookie` each;
//!   - `body`: a string (base64-decoded when `isBase64Encoded` is `true`);
//!     any other non-null JSON value is serialised as JSON;
//!   - `content-type: application/json` is added when the body is non-empty
//!     and no content type was given.
//! - Anything else (not JSON, or JSON without `statusCode`, including
//!   arrays, strings and numbers) is a 200 `application/json` reply whose
//!   body is the payload unchanged.
//! - Hop-by-hop and framing headers the function sets are dropped:
//!   `connection`, `keep-alive`, `proxy-connection`, `transfer-encoding`,
//!   `content-length`, `upgrade`, `te`, `trailer`.
//!
//! An invalid structured response is a [`ReplyError`]; the caller answers
//! [`HttpReply::internal_error`] (502) and logs the error.

use base64::Engine;
use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, SET_COOKIE, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue};
use serde::de::Deserializer;
use serde::Deserialize;
use serde_json::Value;

/// A response to send: status, headers (in order, repeats allowed), body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// Status code, 100–599.
    pub status: u16,
    /// Headers in order; a name may repeat (`set-cookie`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Body bytes.
    pub body: Bytes,
}

/// Why a structured function response cannot be sent (the client gets a
/// bare 502; this detail is for logs only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// `statusCode` is not an integer 100–599.
    #[error("statusCode must be an integer 100-599")]
    BadStatusCode,
    /// `headers` is not an object of scalar values.
    #[error("headers must be an object of strings")]
    BadHeaders,
    /// A header name is not a valid HTTP header name.
    #[error("invalid header name '{0}'")]
    BadHeaderName(String),
    /// A header value is not a valid HTTP header value.
    #[error("invalid value for header '{0}'")]
    BadHeaderValue(String),
    /// `cookies` is not an array of valid header-value strings.
    #[error("cookies must be an array of strings")]
    BadCookies,
    /// `isBase64Encoded` is true but `body` is not valid base64.
    #[error("body is not valid base64")]
    BadBase64,
}

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Headers a function may not set: hop-by-hop and message framing.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "content-length"
            | "upgrade"
            | "te"
            | "trailer"
    )
}

/// The fields of a structured response (others, `multiValueHeaders`
/// included, are ignored). `Some(Value::Null)` is a key
/// present with `null`; `None` a key absent.
#[derive(Deserialize)]
struct Structured {
    #[serde(rename = "statusCode", default, deserialize_with = "present")]
    status_code: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    headers: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    cookies: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    body: Option<Value>,
    #[serde(rename = "isBase64Encoded", default, deserialize_with = "present")]
    is_base64_encoded: Option<Value>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Maps a function's result payload to the reply (rules in the module doc).
pub fn reply_from_payload(payload: Bytes) -> Result<HttpReply, ReplyError> {
    let first = payload.iter().find(|b| !b.is_ascii_whitespace());
    let structured = match first {
        Some(b'{') => serde_json::from_slice::<Structured>(&payload)
            .ok()
            .filter(|s| s.status_code.is_some()),
        _ => None,
    };
    match structured {
        Some(s) => structured_reply(s),
        None => Ok(HttpReply {
            status: 200,
            headers: vec![(CONTENT_TYPE, JSON)],
            body: payload,
        }),
    }
}

/// [`reply_from_payload`], an invalid structured response becoming
/// [`HttpReply::internal_error`] (the error is handed back for logging).
pub fn reply_or_502(payload: Bytes) -> (HttpReply, Option<ReplyError>) {
    match reply_from_payload(payload) {
        Ok(reply) => (reply, None),
        Err(e) => (HttpReply::internal_error(), Some(e)),
    }
}

fn structured_reply(s: Structured) -> Result<HttpReply, ReplyError> {
    let status = s
        .status_code
        .as_ref()
        .and_then(Value::as_u64)
        .filter(|c| (100..=599).contains(c))
        .ok_or(ReplyError::BadStatusCode)? as u16;

    let mut headers = Vec::new();
    match s.headers {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, value) in map {
                let text = match value {
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::Null => continue,
                    Value::Array(_) | Value::Object(_) => return Err(ReplyError::BadHeaders),
                };
                let header = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| ReplyError::BadHeaderName(name.clone()))?;
                let value = HeaderValue::try_from(text)
                    .map_err(|_| ReplyError::BadHeaderValue(name.clone()))?;
                if !is_hop_by_hop(&header) {
                    headers.push((header, value));
                }
            }
        }
        Some(_) => return Err(ReplyError::BadHeaders),
    }

    match s.cookies {
        None | Some(Value::Null) => {}
        Some(Value::Array(cookies)) => {
            for c in cookies {
                let Value::String(c) = c else {
                    return Err(ReplyError::BadCookies);
                };
                let value = HeaderValue::try_from(c).map_err(|_| ReplyError::BadCookies)?;
                headers.push((SET_COOKIE, value));
            }
        }
        Some(_) => return Err(ReplyError::BadCookies),
    }

    let base64 = matches!(s.is_base64_encoded, Some(Value::Bool(true)));
    let body = match s.body {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(text)) if base64 => base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map(Bytes::from)
            .map_err(|_| ReplyError::BadBase64)?,
        Some(Value::String(text)) => Bytes::from(text),
        Some(other) => Bytes::from(other.to_string()),
    };
    if !body.is_empty() && !headers.iter().any(|(n, _)| n == CONTENT_TYPE) {
        headers.push((CONTENT_TYPE, JSON));
    }
    Ok(HttpReply {
        status,
        headers,
        body,
    })
}

impl HttpReply {
    /// A JSON reply `{"message": …}` with a fixed body.
    fn fixed(status: u16, body: &'static str) -> Self {
        Self {
            status,
            headers: vec![(CONTENT_TYPE, JSON)],
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    /// 502 `{"message":"Internal Server Error"}`: the function failed or
    /// answered an invalid response.
    pub fn internal_error() -> Self {
        Self::fixed(502, r#"{"message":"Internal Server Error"}"#)
    }

    /// 504 `{"message":"Endpoint request timed out"}`.
    pub fn timeout() -> Self {
        Self::fixed(504, r#"{"message":"Endpoint request timed out"}"#)
    }

    /// 429 `{"message":"Too Many Requests"}` (rate limit or throttling).
    pub fn too_many_requests() -> Self {
        Self::fixed(429, r#"{"message":"Too Many Requests"}"#)
    }

    /// 404 `{"message":"Not Found"}`.
    pub fn not_found() -> Self {
        Self::fixed(404, r#"{"message":"Not Found"}"#)
    }

    /// 405 `{"message":"Method Not Allowed"}` with `Allow: GET, HEAD`
    /// (the methods joined with `, `; invalid names skipped).
    pub fn method_not_allowed<S: AsRef<str>>(allow: &[S]) -> Self {
        let mut reply = Self::fixed(405, r#"{"message":"Method Not Allowed"}"#);
        let joined = allow
            .iter()
            .map(AsRef::as_ref)
            .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic()))
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(value) = HeaderValue::try_from(joined) {
            reply.headers.push((ALLOW, value));
        }
        reply
    }

    /// 401 `{"message":"Unauthorized"}` with `WWW-Authenticate: Bearer`.
    pub fn unauthorized() -> Self {
        let mut reply = Self::fixed(401, r#"{"message":"Unauthorized"}"#);
        reply
            .headers
            .push((WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        reply
    }

    /// 400 `{"message":"Bad Request"}`.
    pub fn bad_request() -> Self {
        Self::fixed(400, r#"{"message":"Bad Request"}"#)
    }

    /// 403 `{"message":"Forbidden"}`.
    pub fn forbidden() -> Self {
        Self::fixed(403, r#"{"message":"Forbidden"}"#)
    }

    /// 413 `{"message":"Request Entity Too Large"}`.
    pub fn payload_too_large() -> Self {
        Self::fixed(413, r#"{"message":"Request Entity Too Large"}"#)
    }

    /// 503 `{"message":"Service Unavailable"}`.
    pub fn service_unavailable() -> Self {
        Self::fixed(503, r#"{"message":"Service Unavailable"}"#)
    }

    /// A 204 with no body and the given headers (e.g. a CORS preflight answer).
    pub fn no_content(headers: Vec<(HeaderName, HeaderValue)>) -> Self {
        Self {
            status: 204,
            headers,
            body: Bytes::new(),
        }
    }

    /// The reply as an `http::Response` (headers appended in order).
    pub fn into_response(self) -> http::Response<Bytes> {
        let mut response = http::Response::new(self.body);
        *response.status_mut() =
            http::StatusCode::from_u16(self.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
        let headers = response.headers_mut();
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(payload: &str) -> Result<HttpReply, ReplyError> {
        reply_from_payload(Bytes::from(payload.to_owned()))
    }

    fn header_list(r: &HttpReply) -> Vec<(&str, &str)> {
        r.headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect()
    }

    #[test]
    fn plain_payloads_pass_through_as_json_200() {
        for p in [
            r#"{"hello":"world"}"#,
            r#"[1,2]"#,
            r#""text""#,
            "42",
            "not json",
            "",
            r#"  {"statusCode": 200"#,
            r#"{"StatusCode": 201}"#,
        ] {
            let r = reply(p).unwrap();
            assert_eq!(r.status, 200, "{p}");
            assert_eq!(header_list(&r), vec![("content-type", "application/json")]);
            assert_eq!(r.body, p.as_bytes(), "{p}");
        }
    }

    #[test]
    fn structured_response() {
        let r = reply(
            r#"{"statusCode":201,"headers":{"Content-Type":"text/plain","X-N":5,"X-B":true,"X-Null":null},
               "multiValueHeaders":{"x":["a"]},"cookies":["a=1; Path=/","b=2"],"body":"created"}"#,
        )
        .unwrap();
        assert_eq!(r.status, 201);
        let mut headers = header_list(&r);
        headers[..3].sort();
        assert_eq!(
            headers,
            vec![
                ("content-type", "text/plain"),
                ("x-b", "true"),
                ("x-n", "5"),
                ("set-cookie", "a=1; Path=/"),
                ("set-cookie", "b=2"),
            ]
        );
        assert_eq!(r.body, "created");
    }

    #[test]
    fn default_content_type_only_with_a_body() {
        let r = reply(r#"{"statusCode":200,"body":"{\"ok\":true}"}"#).unwrap();
        assert_eq!(header_list(&r), vec![("content-type", "application/json")]);
        assert_eq!(r.body, r#"{"ok":true}"#);
        let r = reply(r#"{"statusCode":204}"#).unwrap();
        assert_eq!((r.status, r.headers.len(), r.body.len()), (204, 0, 0));
        let r = reply(r#"{"statusCode":200,"body":""}"#).unwrap();
        assert!(r.headers.is_empty());
        let r = reply(r#"{"statusCode":200,"body":null,"headers":null,"cookies":null}"#).unwrap();
        assert!(r.headers.is_empty() && r.body.is_empty());
    }

    #[test]
    fn non_string_body_is_serialised() {
        let r = reply(r#"{"statusCode":200,"body":{"a":[1,2]}}"#).unwrap();
        assert_eq!(r.body, r#"{"a":[1,2]}"#);
        let r = reply(r#"{"statusCode":200,"body":7}"#).unwrap();
        assert_eq!(r.body, "7");
    }

    #[test]
    fn base64_body() {
        let r = reply(
            r#"{"statusCode":200,"isBase64Encoded":true,"body":"AAH/","headers":{"content-type":"application/octet-stream"}}"#,
        )
        .unwrap();
        assert_eq!(r.body.as_ref(), &[0u8, 1, 255]);
        assert_eq!(
            reply(r#"{"statusCode":200,"isBase64Encoded":true,"body":"!!"}"#),
            Err(ReplyError::BadBase64)
        );
        // isBase64Encoded false: the text as is.
        let r = reply(r#"{"statusCode":200,"isBase64Encoded":false,"body":"AAH/"}"#).unwrap();
        assert_eq!(r.body, "AAH/");
    }

    #[test]
    fn invalid_structured_responses() {
        for (p, e) in [
            (r#"{"statusCode":99}"#, ReplyError::BadStatusCode),
            (r#"{"statusCode":600}"#, ReplyError::BadStatusCode),
            (r#"{"statusCode":"200"}"#, ReplyError::BadStatusCode),
            (r#"{"statusCode":200.5}"#, ReplyError::BadStatusCode),
            (r#"{"statusCode":-1}"#, ReplyError::BadStatusCode),
            (r#"{"statusCode":null}"#, ReplyError::BadStatusCode),
            (r#"{"statusCode":200,"headers":[]}"#, ReplyError::BadHeaders),
            (
                r#"{"statusCode":200,"headers":{"a":["x"]}}"#,
                ReplyError::BadHeaders,
            ),
            (
                r#"{"statusCode":200,"headers":{"bad name":"x"}}"#,
                ReplyError::BadHeaderName("bad name".into()),
            ),
            (
                r#"{"statusCode":200,"headers":{"x":"a\nb"}}"#,
                ReplyError::BadHeaderValue("x".into()),
            ),
            (
                r#"{"statusCode":200,"cookies":"a=1"}"#,
                ReplyError::BadCookies,
            ),
            (
                r#"{"statusCode":200,"cookies":[1]}"#,
                ReplyError::BadCookies,
            ),
            (
                r#"{"statusCode":200,"cookies":["a\r\n"]}"#,
                ReplyError::BadCookies,
            ),
        ] {
            assert_eq!(reply(p), Err(e), "{p}");
        }
        let (r, e) = reply_or_502(Bytes::from_static(br#"{"statusCode":0}"#));
        assert_eq!(r, HttpReply::internal_error());
        assert_eq!(e, Some(ReplyError::BadStatusCode));
        let (r, e) = reply_or_502(Bytes::from_static(b"ok"));
        assert_eq!((r.status, e), (200, None));
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let r = reply(
            r#"{"statusCode":200,"headers":{"Connection":"close","Transfer-Encoding":"chunked",
                "Content-Length":"3","Keep-Alive":"x","Upgrade":"h2c","TE":"trailers","Trailer":"x","x-ok":"1"}}"#,
        )
        .unwrap();
        assert_eq!(header_list(&r), vec![("x-ok", "1")]);
    }

    #[test]
    fn fixed_answers() {
        let cases = [
            (HttpReply::internal_error(), 502, "Internal Server Error"),
            (HttpReply::timeout(), 504, "Endpoint request timed out"),
            (HttpReply::too_many_requests(), 429, "Too Many Requests"),
            (HttpReply::not_found(), 404, "Not Found"),
            (HttpReply::unauthorized(), 401, "Unauthorized"),
            (HttpReply::forbidden(), 403, "Forbidden"),
            (
                HttpReply::payload_too_large(),
                413,
                "Request Entity Too Large",
            ),
            (HttpReply::service_unavailable(), 503, "Service Unavailable"),
            (
                HttpReply::method_not_allowed(&["GET", "HEAD"]),
                405,
                "Method Not Allowed",
            ),
        ];
        for (r, status, message) in cases {
            assert_eq!(r.status, status);
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v, serde_json::json!({ "message": message }));
            assert_eq!(r.headers[0], (CONTENT_TYPE, JSON));
        }
        let r = HttpReply::method_not_allowed(&["GET".to_string(), "POST".to_string()]);
        assert_eq!(r.headers[1], (ALLOW, HeaderValue::from_static("GET, POST")));
        let r = HttpReply::unauthorized();
        assert_eq!(
            r.headers[1],
            (WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
        );
    }

    #[test]
    fn into_response_keeps_repeated_headers() {
        let r = reply(r#"{"statusCode":302,"headers":{"location":"/x"},"cookies":["a=1","b=2"]}"#)
            .unwrap()
            .into_response();
        assert_eq!(r.status(), 302);
        assert_eq!(r.headers()["location"], "/x");
        assert_eq!(r.headers().get_all(SET_COOKIE).iter().count(), 2);
        let r = HttpReply::no_content(vec![]).into_response();
        assert_eq!(r.status(), 204);
        assert!(r.body().is_empty());
    }
}
