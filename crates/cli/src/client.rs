//! A small HTTP client for the HotSwap REST API: base URL, bearer token, and
//! one place that turns transport failures and non-2xx answers into
//! [`CliError`]s.

use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde_json::Value;

use crate::error::{ApiError, CliError};

/// A 2xx answer: the body exactly as received (for `--output json`) and
/// parsed (for tables). An empty body (204) is `Value::Null`.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub text: String,
    pub value: Value,
}

impl Response {
    pub fn is_empty(&self) -> bool {
        self.text.trim().is_empty()
    }
}

/// A 2xx answer whose body need not be JSON (a function's payload), with
/// its headers.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl RawResponse {
    /// A header's value, if present and readable as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The API client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
    /// `?owner=` for every `/v1/functions…` request (`--owner`).
    owner: Option<String>,
}

impl Client {
    /// A client for the API at `base_url` (`http://host:port`, optionally with
    /// a path prefix), authenticating with `token` when given.
    pub fn new(base_url: &str, token: Option<&str>) -> Result<Self, CliError> {
        let base = parse_base_url(base_url)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("hotswap-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| CliError::usage(format!("cannot build the HTTP client: {e}")))?;
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        Ok(Self {
            http,
            base,
            token,
            owner: None,
        })
    }

    /// The same client, addressing `owner`'s functions (`--owner`).
    pub fn with_owner(mut self, owner: Option<&str>) -> Self {
        self.owner = owner
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned);
        self
    }

    /// The owner given with `--owner`, if any.
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The base URL as given (for messages).
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `base/v1/seg/seg…`, each segment percent-encoded as a path segment.
    pub fn v1_url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .expect("base URL was checked to be a base");
            path.pop_if_empty().push("v1");
            path.extend(segments);
        }
        url
    }

    /// A request to `/v1/…` with the query and the token.
    fn request(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> reqwest::RequestBuilder {
        let url = self.v1_url(segments);
        let mut req = self.http.request(method, url);
        if !query.is_empty() {
            req = req.query(query);
        }
        // Function names are unique per owner: `--owner` picks whose. It
        // also picks whose security groups are created or listed.
        // And whose queues every queue request addresses.
        let owned = matches!(
            segments,
            ["functions", ..] | ["security-groups"] | ["queues", ..]
        );
        if let (Some(owner), true) = (&self.owner, owned) {
            req = req.query(&[("owner", owner)]);
        }
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req
    }

    /// Sends a request; returns the 2xx answer's status, headers and text,
    /// or the error.
    async fn exchange(&self, req: reqwest::RequestBuilder) -> Result<RawResponse, CliError> {
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(|e| self.unreachable(&e))?;
        if !(200..300).contains(&status) {
            return Err(ApiError::from_response(status, &text).into());
        }
        Ok(RawResponse {
            status,
            headers,
            text,
        })
    }

    /// Sends one request to `/v1/…` and returns the 2xx answer, or the error.
    pub async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Response, CliError> {
        let mut req = self.request(method, segments, query);
        if let Some(body) = body {
            req = req.json(body);
        }
        let RawResponse { status, text, .. } = self.exchange(req).await?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| {
                CliError::BadResponse(format!("HTTP {status} with a body that is not JSON ({e})"))
            })?
        };
        Ok(Response {
            status,
            text,
            value,
        })
    }

    /// POSTs `body` as JSON text, sent as is, and returns the 2xx answer
    /// whatever its body. `timeout` replaces the client's default (for
    /// invocations, which may run for up to 15 minutes).
    pub async fn post_raw(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        body: String,
        timeout: Duration,
    ) -> Result<RawResponse, CliError> {
        let req = self
            .request(Method::POST, segments, query)
            .header(CONTENT_TYPE, "application/json")
            .timeout(timeout)
            .body(body);
        self.exchange(req).await
    }

    pub async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Response, CliError> {
        self.send(Method::GET, segments, query, None).await
    }

    pub async fn post(&self, segments: &[&str], body: &Value) -> Result<Response, CliError> {
        self.send(Method::POST, segments, &[], Some(body)).await
    }

    pub async fn put(&self, segments: &[&str], body: &Value) -> Result<Response, CliError> {
        self.send(Method::PUT, segments, &[], Some(body)).await
    }

    pub async fn patch(&self, segments: &[&str], body: &Value) -> Result<Response, CliError> {
        self.send(Method::PATCH, segments, &[], Some(body)).await
    }

    pub async fn delete(&self, segments: &[&str]) -> Result<Response, CliError> {
        self.send(Method::DELETE, segments, &[], None).await
    }

    fn unreachable(&self, e: &reqwest::Error) -> CliError {
        CliError::Unreachable {
            url: self.base_url().to_owned(),
            reason: transport_reason(e),
        }
    }
}

/// Checks that the base URL is an absolute http(s) URL.
pub fn parse_base_url(s: &str) -> Result<Url, CliError> {
    let url =
        Url::parse(s.trim()).map_err(|e| CliError::usage(format!("invalid --url '{s}': {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(CliError::usage(format!(
            "invalid --url '{s}': expected http://HOST:PORT or https://HOST"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(CliError::usage(format!(
            "invalid --url '{s}': no query or fragment allowed"
        )));
    }
    Ok(url)
}

/// The most specific causes of a transport error, e.g. `tcp connect error:
/// Connection refused (os error 111)`; reqwest's own top line only repeats
/// the URL.
fn transport_reason(e: &reqwest::Error) -> String {
    let mut causes: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        // hyper's "client error (Connect)" only says which stage failed; the
        // next cause says how.
        if !text.starts_with("client error (") && !causes.iter().any(|c| c.contains(&text)) {
            causes.push(text);
        }
        source = s.source();
    }
    if e.is_timeout() {
        causes.insert(0, "timed out".to_owned());
    }
    if causes.is_empty() {
        e.to_string()
    } else {
        causes.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_built_under_v1_with_encoded_segments() {
        let c = Client::new("http://127.0.0.1:8080", Some("t")).unwrap();
        assert_eq!(
            c.v1_url(&["functions", "f", "versions", "$LATEST"])
                .as_str(),
            "http://127.0.0.1:8080/v1/functions/f/versions/$LATEST"
        );
        assert_eq!(
            c.v1_url(&["triggers", "a/b c"]).as_str(),
            "http://127.0.0.1:8080/v1/triggers/a%2Fb%20c"
        );
        let c = Client::new("https://example.test/hotswap/", None).unwrap();
        assert_eq!(
            c.v1_url(&["whoami"]).as_str(),
            "https://example.test/hotswap/v1/whoami"
        );
        assert_eq!(c.base_url(), "https://example.test/hotswap");
        assert!(!c.has_token());
    }

    #[test]
    fn bad_base_urls_are_usage_errors() {
        for bad in ["127.0.0.1:8080", "ftp://x", "not a url", "http://x/?q=1"] {
            let e = Client::new(bad, None).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::EXIT_USAGE, "{bad}");
        }
    }

    #[test]
    fn blank_tokens_are_no_tokens() {
        assert!(!Client::new("http://x", Some("  \n")).unwrap().has_token());
        let owned = Client::new("http://x", None)
            .unwrap()
            .with_owner(Some("bob"));
        let req = owned
            .request(
                Method::GET,
                &["functions", "f"],
                &[("qualifier", "1".into())],
            )
            .build()
            .unwrap();
        assert_eq!(req.url().query(), Some("qualifier=1&owner=bob"));
        let req = owned
            .request(Method::GET, &["layers"], &[])
            .build()
            .unwrap();
        assert_eq!(
            req.url().query(),
            None,
            "only function routes carry the owner"
        );
        for (segments, query) in [
            (&["security-groups"][..], Some("owner=bob")),
            (&["security-groups", "sg-1"][..], None),
            (&["subnets"][..], None),
            (&["queues"][..], Some("owner=bob")),
            (&["queues", "q", "messages"][..], Some("owner=bob")),
        ] {
            let req = owned.request(Method::POST, segments, &[]).build().unwrap();
            assert_eq!(req.url().query(), query, "{segments:?}");
        }
        assert!(Client::new("http://x", Some("abc\n")).unwrap().has_token());
    }

    #[tokio::test]
    async fn unreachable_server_is_reported_with_its_url() {
        // Bind then drop a listener to get a local port nobody listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let c = Client::new(&url, None).unwrap();
        let e = c.get(&["whoami"], &[]).await.unwrap_err();
        let text = e.render(false);
        assert!(
            text.starts_with(&format!("error: cannot reach HotSwap at {url}: ")),
            "{text}"
        );
        assert_eq!(e.exit_code(), crate::error::EXIT_API);
    }
}
