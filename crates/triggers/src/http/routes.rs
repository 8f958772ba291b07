//! The HTTP route table: path patterns with `{param}` and `{proxy+}`
//! segments, chosen by API Gateway HTTP API rules.
//!
//! Rules, in order:
//! - A path must start with `/`; one trailing slash is ignored (`/a/` is
//!   `/a`); a path with an empty segment (`//`) never matches.
//! - Literal segments compare case-sensitively with the request's segment
//!   after percent-decoding (`/%61` matches `/a`).
//! - `{name}` matches one whole non-empty segment; a final `{name+}`
//!   matches one or more remaining segments (`/a/{proxy+}` matches `/a/b`
//!   and `/a/b/c`, not `/a`).
//! - Among the routes whose pattern *and* method match, the most specific
//!   wins: compare segment by segment from the left, literal > `{param}` >
//!   `{proxy+}`. At one pattern, a route listing the method beats `ANY`.
//! - `HEAD` is served by a route listing `HEAD`, else by one listing `GET`
//!   (at the same pattern), else by `ANY`.
//! - A path some pattern matches while no method does gives
//!   [`RouteMiss::MethodNotAllowed`] with the methods of the most specific
//!   matching pattern; otherwise [`RouteMiss::NotFound`].
//! - Parameter values are percent-decoded (`+` stays `+`); a value whose
//!   decoding is not UTF-8 is passed on raw (still percent-encoded) rather
//!   than refusing the request.
//!
//! Patterns are compiled into a segment trie at insert time, so a lookup
//! walks the path once without allocating; only a hit's parameter map
//! allocates.

use std::collections::BTreeMap;

use super::pct;

/// Path parameters of a hit: name → percent-decoded value.
pub type PathParams = BTreeMap<String, String>;

/// Why a route could not be added to a [`RouteTable`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The path pattern is malformed (the reason is the second field).
    #[error("route path '{0}' is invalid: {1}")]
    InvalidPattern(String, &'static str),
    /// `Some(vec![])` was given as the method list.
    #[error("route '{0}' lists no methods")]
    NoMethods(String),
    /// A route of the same shape already serves one of these methods
    /// (both `ANY`, or both listing a common method).
    #[error("route '{route}' conflicts with route '{existing}'")]
    Conflict {
        /// The pattern refused.
        route: String,
        /// The pattern already in the table.
        existing: String,
    },
}

/// A request no route serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMiss {
    /// No pattern matches the path (404).
    NotFound,
    /// A pattern matches the path but none of its routes allows the method
    /// (405). `allow` is sorted and de-duplicated; it holds `HEAD` whenever
    /// it holds `GET`.
    MethodNotAllowed {
        /// Methods allowed at the most specific matching pattern.
        allow: Vec<String>,
    },
}

/// The route chosen for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteHit<'a, T> {
    /// The value stored with the route.
    pub value: &'a T,
    /// The route's pattern as given, without a trailing slash (`/orders/{id}`).
    pub pattern: &'a str,
    /// The route method that matched: the listed method (`GET` for a `HEAD`
    /// served by a `GET` route) or `ANY`.
    pub method: &'a str,
    /// Percent-decoded path parameters (empty when the pattern has none).
    pub params: PathParams,
}

impl<T> RouteHit<'_, T> {
    /// The API Gateway route key, `"<METHOD> <pattern>"` (e.g.
    /// `GET /orders/{id}`, `ANY /files/{proxy+}`).
    pub fn route_key(&self) -> String {
        format!("{} {}", self.method, self.pattern)
    }
}

#[derive(Debug, Clone)]
enum Seg {
    Lit(Box<str>),
    Param(Box<str>),
    Proxy(Box<str>),
}

#[derive(Debug, Clone)]
enum Methods {
    Any,
    /// Upper-case, sorted, de-duplicated.
    List(Box<[Box<str>]>),
}

impl Methods {
    fn parse(methods: Option<&[String]>) -> Option<Methods> {
        let Some(methods) = methods else {
            return Some(Methods::Any);
        };
        if methods.is_empty() {
            return None;
        }
        let mut list: Vec<Box<str>> = Vec::with_capacity(methods.len());
        for m in methods {
            let m = m.trim().to_ascii_uppercase();
            if m == "ANY" || m == "*" {
                return Some(Methods::Any);
            }
            list.push(m.into_boxed_str());
        }
        list.sort();
        list.dedup();
        Some(Methods::List(list.into_boxed_slice()))
    }

    fn overlaps(&self, other: &Methods) -> bool {
        match (self, other) {
            (Methods::Any, Methods::Any) => true,
            (Methods::List(a), Methods::List(b)) => a.iter().any(|m| b.contains(m)),
            _ => false,
        }
    }

    fn lists(&self, method: &str) -> Option<&str> {
        match self {
            Methods::Any => None,
            Methods::List(l) => l.iter().find(|m| &***m == method).map(|m| &**m),
        }
    }
}

#[derive(Debug, Clone)]
struct Route<T> {
    pattern: Box<str>,
    segs: Box<[Seg]>,
    methods: Methods,
    value: T,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// Sorted by segment text.
    lits: Vec<(Box<str>, Node)>,
    param: Option<Box<Node>>,
    /// Routes ending in `{proxy+}` after this node.
    proxy: Vec<usize>,
    /// Routes ending exactly at this node.
    here: Vec<usize>,
}

/// A table of HTTP routes, each holding a `T` (e.g. the trigger it serves).
#[derive(Debug, Clone)]
pub struct RouteTable<T> {
    routes: Vec<Route<T>>,
    root: Node,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The shape of a path pattern, for conflict detection: trailing slash
/// dropped, `{name}` → `{}`, `{name+}` → `{+}`. `/orders/{id}` and
/// `/orders/{oid}/` both give `/orders/{}`. Does not validate.
pub fn normalise_pattern(path: &str) -> String {
    let trimmed = trim_trailing_slash(path);
    let mut out = String::with_capacity(trimmed.len());
    for (i, seg) in trimmed.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if seg.len() >= 2 && seg.starts_with('{') && seg.ends_with('}') {
            out.push_str(if seg.ends_with("+}") { "{+}" } else { "{}" });
        } else {
            out.push_str(seg);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn trim_trailing_slash(path: &str) -> &str {
    if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    }
}

fn valid_param_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn parse_pattern(pattern: &str) -> Result<(&str, Vec<Seg>), &'static str> {
    if !pattern.starts_with('/') {
        return Err("it must start with '/'");
    }
    if pattern.contains("//") {
        return Err("it has an empty segment");
    }
    let p = trim_trailing_slash(pattern);
    let mut segs = Vec::new();
    if p == "/" {
        return Ok((p, segs));
    }
    let parts: Vec<&str> = p[1..].split('/').collect();
    let last = parts.len() - 1;
    for (i, part) in parts.into_iter().enumerate() {
        if let Some(inner) = part.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if let Some(name) = inner.strip_suffix('+') {
                if i != last {
                    return Err("a {name+} segment must be the last");
                }
                if !valid_param_name(name) {
                    return Err("a parameter name must be letters, digits, '_', '-' or '.'");
                }
                segs.push(Seg::Proxy(name.into()));
            } else {
                if !valid_param_name(inner) {
                    return Err("a parameter name must be letters, digits, '_', '-' or '.'");
                }
                segs.push(Seg::Param(inner.into()));
            }
        } else if part.contains(['{', '}']) {
            return Err("braces must enclose a whole segment");
        } else if part.contains(['%', '?', '#']) {
            return Err("a literal segment may not hold '%', '?' or '#'");
        } else {
            segs.push(Seg::Lit(part.into()));
        }
    }
    let mut names: Vec<&str> = segs
        .iter()
        .filter_map(|s| match s {
            Seg::Param(n) | Seg::Proxy(n) => Some(&**n),
            Seg::Lit(_) => None,
        })
        .collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err("a parameter name is used twice");
    }
    Ok((p, segs))
}

/// Splits the first segment off `rest` (a path without its leading `/`).
#[inline]
fn next_segment(rest: &str) -> (&str, &str) {
    match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    }
}

/// The request path without its leading slash, or `None` if it can never match.
#[inline]
fn normalise_request_path(path: &str) -> Option<&str> {
    let path = if path.is_empty() { "/" } else { path };
    if path.contains("//") {
        return None;
    }
    trim_trailing_slash(path).strip_prefix('/')
}

impl<T> RouteTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            routes: Vec::new(),
            root: Node::default(),
        }
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table has no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The routes in insertion order: (pattern, value).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.routes.iter().map(|r| (&*r.pattern, &r.value))
    }

    /// Adds a route. `methods`: `None`, or a list holding `ANY`/`*`, means
    /// any method; names are upper-cased. Refuses a malformed pattern, an
    /// empty method list, and a route whose shape ([`normalise_pattern`])
    /// and methods overlap an existing one (the table is then unchanged).
    pub fn insert(
        &mut self,
        pattern: &str,
        methods: Option<&[String]>,
        value: T,
    ) -> Result<(), RouteError> {
        let (canonical, segs) =
            parse_pattern(pattern).map_err(|e| RouteError::InvalidPattern(pattern.into(), e))?;
        let methods =
            Methods::parse(methods).ok_or_else(|| RouteError::NoMethods(pattern.into()))?;
        let mut node = &mut self.root;
        let mut proxy = false;
        for seg in &segs {
            match seg {
                Seg::Lit(l) => {
                    let i = match node.lits.binary_search_by(|(k, _)| (**k).cmp(l)) {
                        Ok(i) => i,
                        Err(i) => {
                            node.lits.insert(i, (l.clone(), Node::default()));
                            i
                        }
                    };
                    node = &mut node.lits[i].1;
                }
                Seg::Param(_) => node = node.param.get_or_insert_with(Box::default),
                Seg::Proxy(_) => proxy = true,
            }
        }
        let list = if proxy {
            &mut node.proxy
        } else {
            &mut node.here
        };
        if let Some(&clash) = list
            .iter()
            .find(|&&i| self.routes[i].methods.overlaps(&methods))
        {
            return Err(RouteError::Conflict {
                route: pattern.into(),
                existing: self.routes[clash].pattern.to_string(),
            });
        }
        list.push(self.routes.len());
        self.routes.push(Route {
            pattern: canonical.into(),
            segs: segs.into_boxed_slice(),
            methods,
            value,
        });
        Ok(())
    }

    /// The route serving `method` on `path` (the raw, still percent-encoded
    /// path without `/fn` prefix nor query string), with its decoded
    /// parameters; or why none does (404 / 405).
    pub fn lookup<'a>(&'a self, path: &str, method: &str) -> Result<RouteHit<'a, T>, RouteMiss> {
        let rest = normalise_request_path(path).ok_or(RouteMiss::NotFound)?;
        let mut first = None;
        match self.search(&self.root, rest, Some(method), &mut first) {
            Some((i, matched)) => {
                let route = &self.routes[i];
                Ok(RouteHit {
                    value: &route.value,
                    pattern: &route.pattern,
                    method: matched,
                    params: extract_params(&route.segs, rest),
                })
            }
            None => Err(match first {
                None => RouteMiss::NotFound,
                Some(list) => RouteMiss::MethodNotAllowed {
                    allow: self.allowed(list),
                },
            }),
        }
    }

    /// For a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`):
    /// the route that would serve `requested_method` on `path`, by the same
    /// rules as [`lookup`](Self::lookup), without building parameters.
    pub fn lookup_preflight(&self, path: &str, requested_method: &str) -> Option<&T> {
        let rest = normalise_request_path(path)?;
        let mut first = None;
        self.search(&self.root, rest, Some(requested_method), &mut first)
            .map(|(i, _)| &self.routes[i].value)
    }

    /// Every route at the most specific pattern matching `path`, whatever
    /// their methods (insertion order); empty when no pattern matches.
    pub fn path_routes(&self, path: &str) -> Vec<&T> {
        let Some(rest) = normalise_request_path(path) else {
            return Vec::new();
        };
        let mut first = None;
        self.search(&self.root, rest, None, &mut first);
        first
            .unwrap_or_default()
            .iter()
            .map(|&i| &self.routes[i].value)
            .collect()
    }

    /// Depth-first, most specific first: literal, then `{param}`, then
    /// `{proxy+}` at each segment. `first` records the routes of the first
    /// (most specific) pattern matching the path; `method: None` only
    /// records it.
    fn search<'a>(
        &'a self,
        node: &'a Node,
        rest: &str,
        method: Option<&str>,
        first: &mut Option<&'a [usize]>,
    ) -> Option<(usize, &'a str)> {
        if rest.is_empty() {
            return self.pick(&node.here, method, first);
        }
        let (seg, tail) = next_segment(rest);
        if let Some(child) = find_literal(&node.lits, seg) {
            if let Some(hit) = self.search(child, tail, method, first) {
                return Some(hit);
            }
        }
        if let Some(child) = &node.param {
            if let Some(hit) = self.search(child, tail, method, first) {
                return Some(hit);
            }
        }
        self.pick(&node.proxy, method, first)
    }

    fn pick<'a>(
        &'a self,
        list: &'a [usize],
        method: Option<&str>,
        first: &mut Option<&'a [usize]>,
    ) -> Option<(usize, &'a str)> {
        if list.is_empty() {
            return None;
        }
        first.get_or_insert(list);
        let method = method?;
        let explicit = |m: &str| {
            list.iter()
                .find_map(|&i| self.routes[i].methods.lists(m).map(|found| (i, found)))
        };
        explicit(method)
            .or_else(|| (method == "HEAD").then(|| explicit("GET")).flatten())
            .or_else(|| {
                list.iter()
                    .find(|&&i| matches!(self.routes[i].methods, Methods::Any))
                    .map(|&i| (i, "ANY"))
            })
    }

    fn allowed(&self, list: &[usize]) -> Vec<String> {
        let mut allow: Vec<String> = Vec::new();
        for &i in list {
            if let Methods::List(l) = &self.routes[i].methods {
                for m in l.iter() {
                    allow.push(m.to_string());
                    if &**m == "GET" {
                        allow.push("HEAD".into());
                    }
                }
            }
        }
        allow.sort();
        allow.dedup();
        allow
    }
}

#[inline]
fn find_literal<'n>(lits: &'n [(Box<str>, Node)], seg: &str) -> Option<&'n Node> {
    if lits.is_empty() {
        return None;
    }
    if seg.contains('%') {
        lits.iter()
            .find(|(k, _)| pct::eq_decoded(seg, k))
            .map(|(_, n)| n)
    } else {
        lits.binary_search_by(|(k, _)| (**k).cmp(seg))
            .ok()
            .map(|i| &lits[i].1)
    }
}

fn decode_param(raw: &str) -> String {
    match pct::decode_utf8(raw, false) {
        Some(s) => s.into_owned(),
        None => raw.to_owned(),
    }
}

fn extract_params(segs: &[Seg], mut rest: &str) -> PathParams {
    let mut params = PathParams::new();
    for seg in segs {
        match seg {
            Seg::Lit(_) => rest = next_segment(rest).1,
            Seg::Param(name) => {
                let (value, tail) = next_segment(rest);
                params.insert(name.to_string(), decode_param(value));
                rest = tail;
            }
            Seg::Proxy(name) => {
                params.insert(name.to_string(), decode_param(rest));
                break;
            }
        }
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(list: &[&str]) -> Option<Vec<String>> {
        Some(list.iter().map(|s| s.to_string()).collect())
    }

    fn table(routes: &[(&str, Option<Vec<String>>, &'static str)]) -> RouteTable<&'static str> {
        let mut t = RouteTable::new();
        for (p, ms, v) in routes {
            t.insert(p, ms.as_deref(), *v).unwrap();
        }
        t
    }

    fn hit(t: &RouteTable<&'static str>, method: &str, path: &str) -> &'static str {
        t.lookup(path, method)
            .unwrap_or_else(|e| panic!("{method} {path}: {e:?}"))
            .value
    }

    fn params(pairs: &[(&str, &str)]) -> PathParams {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn literal_routes_and_trailing_slash() {
        let t = table(&[
            ("/", None, "root"),
            ("/a", None, "a"),
            ("/a/b/", None, "ab"),
        ]);
        assert_eq!(hit(&t, "GET", "/"), "root");
        assert_eq!(hit(&t, "GET", ""), "root");
        assert_eq!(hit(&t, "GET", "/a"), "a");
        assert_eq!(hit(&t, "GET", "/a/"), "a");
        assert_eq!(hit(&t, "GET", "/a/b"), "ab");
        assert_eq!(hit(&t, "GET", "/a/b/"), "ab");
        assert_eq!(t.lookup("/a/b/c", "GET"), Err(RouteMiss::NotFound));
        assert_eq!(t.lookup("/A", "GET"), Err(RouteMiss::NotFound));
        assert_eq!(t.lookup("a", "GET"), Err(RouteMiss::NotFound));
        assert_eq!(t.lookup("/a/b//", "GET"), Err(RouteMiss::NotFound));
        assert_eq!(t.lookup("//a", "GET"), Err(RouteMiss::NotFound));
        assert_eq!(t.lookup("//", "GET"), Err(RouteMiss::NotFound));
        assert_eq!(t.lookup("/a//b", "GET"), Err(RouteMiss::NotFound));
        assert_eq!(t.lookup("/a/b", "GET").unwrap().pattern, "/a/b");
    }

    #[test]
    fn literal_matches_percent_encoded_segment() {
        let t = table(&[("/abc/d", None, "abc")]);
        assert_eq!(hit(&t, "GET", "/%61bc/%64"), "abc");
        assert_eq!(t.lookup("/%61b", "GET"), Err(RouteMiss::NotFound));
    }

    #[test]
    fn params_are_captured_and_decoded() {
        let t = table(&[("/orders/{id}/items/{item}", m(&["GET"]), "item")]);
        let h = t.lookup("/orders/42/items/a%20b+c", "GET").unwrap();
        assert_eq!(h.value, &"item");
        assert_eq!(h.params, params(&[("id", "42"), ("item", "a b+c")]));
        assert_eq!(h.route_key(), "GET /orders/{id}/items/{item}");
        let h = t.lookup("/orders/caf%C3%A9/items/x/", "GET").unwrap();
        assert_eq!(h.params["id"], "café");
        assert_eq!(h.params["item"], "x");
        // Invalid UTF-8 once decoded: passed on raw.
        let h = t.lookup("/orders/%FF%FE/items/x", "GET").unwrap();
        assert_eq!(h.params["id"], "%FF%FE");
        // A parameter is one whole segment.
        assert_eq!(
            t.lookup("/orders/42/items", "GET"),
            Err(RouteMiss::NotFound)
        );
    }

    #[test]
    fn proxy_matches_one_or_more_segments() {
        let t = table(&[("/a/{proxy+}", None, "proxy")]);
        assert_eq!(t.lookup("/a", "GET"), Err(RouteMiss::NotFound));
        assert_eq!(t.lookup("/a/", "GET"), Err(RouteMiss::NotFound));
        let h = t.lookup("/a/b", "GET").unwrap();
        assert_eq!(h.params, params(&[("proxy", "b")]));
        let h = t.lookup("/a/b/c%2Fd/", "GET").unwrap();
        assert_eq!(h.params, params(&[("proxy", "b/c/d")]));
        assert_eq!(h.route_key(), "ANY /a/{proxy+}");
        assert_eq!(t.lookup("/a/b//c", "GET"), Err(RouteMiss::NotFound));
        let root = table(&[("/{proxy+}", None, "all")]);
        assert_eq!(hit(&root, "GET", "/x/y"), "all");
        assert_eq!(root.lookup("/", "GET"), Err(RouteMiss::NotFound));
    }

    #[test]
    fn most_specific_wins_left_to_right() {
        let t = table(&[
            ("/{proxy+}", None, "catchall"),
            ("/pets/{proxy+}", None, "pets-proxy"),
            ("/pets/{id}", None, "pet"),
            ("/pets/dog", None, "dog"),
            ("/pets/{id}/toys", None, "toys"),
            ("/{kind}/dog/toys", None, "kind-dog-toys"),
        ]);
        assert_eq!(hit(&t, "GET", "/pets/dog"), "dog");
        assert_eq!(hit(&t, "GET", "/pets/cat"), "pet");
        assert_eq!(hit(&t, "GET", "/pets/cat/toys"), "toys");
        // Literal `pets` at segment 1 beats `{kind}`, even though
        // `/{kind}/dog/toys` has more literals overall.
        assert_eq!(hit(&t, "GET", "/pets/dog/toys"), "toys");
        assert_eq!(hit(&t, "GET", "/cats/dog/toys"), "kind-dog-toys");
        assert_eq!(hit(&t, "GET", "/pets/cat/food"), "pets-proxy");
        assert_eq!(hit(&t, "GET", "/other"), "catchall");
        // Backtracking: the literal branch dead-ends, the param branch fits.
        let t = table(&[("/a/b/c", None, "abc"), ("/a/{x}/d", None, "axd")]);
        assert_eq!(hit(&t, "GET", "/a/b/d"), "axd");
        assert_eq!(t.lookup("/a/b/d", "GET").unwrap().params["x"], "b");
    }

    #[test]
    fn method_selection() {
        let t = table(&[
            ("/items", m(&["get", "POST"]), "list"),
            ("/items", None, "any"),
            ("/items/{id}", m(&["DELETE"]), "delete"),
        ]);
        let h = t.lookup("/items", "GET").unwrap();
        assert_eq!((h.value, h.method), (&"list", "GET"));
        assert_eq!(hit(&t, "POST", "/items"), "list");
        let h = t.lookup("/items", "PUT").unwrap();
        assert_eq!((h.value, h.method), (&"any", "ANY"));
        assert_eq!(hit(&t, "DELETE", "/items/1"), "delete");
        assert_eq!(
            t.lookup("/items/1", "GET"),
            Err(RouteMiss::MethodNotAllowed {
                allow: vec!["DELETE".into()]
            })
        );
    }

    #[test]
    fn method_beats_specificity_only_when_pattern_fails_method() {
        // POST /pets/dog: the literal route does not serve POST, so the
        // less specific ANY proxy does.
        let t = table(&[
            ("/pets/dog", m(&["GET"]), "dog"),
            ("/pets/{proxy+}", None, "proxy"),
        ]);
        assert_eq!(hit(&t, "GET", "/pets/dog"), "dog");
        assert_eq!(hit(&t, "POST", "/pets/dog"), "proxy");
    }

    #[test]
    fn method_not_allowed_lists_most_specific_pattern() {
        let t = table(&[
            ("/a/{id}", m(&["PUT", "GET"]), "a-put-get"),
            ("/a/{other}", m(&["PATCH "]), "a-patch"),
            ("/a/b", m(&["POST"]), "ab"),
            ("/{proxy+}", m(&["DELETE"]), "del"),
        ]);
        // No route serves OPTIONS on /a/b: the allow list is that of the
        // most specific pattern, `/a/b`.
        assert_eq!(
            t.lookup("/a/b", "OPTIONS"),
            Err(RouteMiss::MethodNotAllowed {
                allow: vec!["POST".into()]
            })
        );
        // A less specific pattern serving the method still wins.
        assert_eq!(hit(&t, "PATCH", "/a/b"), "a-patch");
        assert_eq!(
            t.lookup("/a/c", "POST"),
            Err(RouteMiss::MethodNotAllowed {
                allow: vec!["GET".into(), "HEAD".into(), "PATCH".into(), "PUT".into()]
            })
        );
        assert_eq!(hit(&t, "PATCH", "/a/c"), "a-patch");
        assert_eq!(hit(&t, "DELETE", "/a/c"), "del");
    }

    #[test]
    fn head_falls_back_to_get() {
        let t = table(&[
            ("/a", m(&["GET"]), "get"),
            ("/b", m(&["GET"]), "get-b"),
            ("/b", m(&["HEAD"]), "head-b"),
            ("/c", m(&["POST"]), "post-c"),
            ("/c", None, "any-c"),
            ("/d", m(&["GET"]), "get-d"),
            ("/d", None, "any-d"),
        ]);
        let h = t.lookup("/a", "HEAD").unwrap();
        assert_eq!((h.value, h.method), (&"get", "GET"));
        assert_eq!(hit(&t, "HEAD", "/b"), "head-b");
        assert_eq!(hit(&t, "HEAD", "/c"), "any-c");
        assert_eq!(hit(&t, "HEAD", "/d"), "get-d");
        assert_eq!(
            t.lookup("/a", "POST"),
            Err(RouteMiss::MethodNotAllowed {
                allow: vec!["GET".into(), "HEAD".into()]
            })
        );
    }

    #[test]
    fn star_and_any_mean_any_method() {
        let t = table(&[("/s", m(&["*"]), "star"), ("/n", m(&["GET", "ANY"]), "n")]);
        assert_eq!(hit(&t, "OPTIONS", "/s"), "star");
        assert_eq!(t.lookup("/s", "OPTIONS").unwrap().method, "ANY");
        assert_eq!(hit(&t, "PATCH", "/n"), "n");
    }

    #[test]
    fn preflight_and_path_routes() {
        let t = table(&[
            ("/x/{id}", m(&["GET"]), "get"),
            ("/x/{id}", m(&["POST"]), "post"),
            ("/x/{proxy+}", m(&["PUT"]), "put"),
        ]);
        assert_eq!(t.lookup_preflight("/x/1", "POST"), Some(&"post"));
        assert_eq!(t.lookup_preflight("/x/1", "GET"), Some(&"get"));
        assert_eq!(t.lookup_preflight("/x/1", "PUT"), Some(&"put"));
        assert_eq!(t.lookup_preflight("/x/1", "DELETE"), None);
        assert_eq!(t.lookup_preflight("/y", "GET"), None);
        assert_eq!(t.path_routes("/x/1"), vec![&"get", &"post"]);
        assert_eq!(t.path_routes("/x/1/2"), vec![&"put"]);
        assert!(t.path_routes("/nope").is_empty());
        assert!(t.path_routes("//").is_empty());
    }

    #[test]
    fn insert_refuses_bad_patterns() {
        let mut t = RouteTable::new();
        for bad in [
            "a",
            "",
            "/a//b",
            "/a//",
            "//",
            "/{proxy+}/a",
            "/a{b}",
            "/{}",
            "/{+}",
            "/{a}/{a}",
            "/{a}/{a+}",
            "/a%20",
            "/{a b}",
        ] {
            assert!(
                matches!(t.insert(bad, None, ()), Err(RouteError::InvalidPattern(..))),
                "{bad}"
            );
        }
        assert_eq!(
            t.insert("/a", Some(&[]), ()),
            Err(RouteError::NoMethods("/a".into()))
        );
        assert!(t.is_empty());
    }

    #[test]
    fn insert_refuses_overlapping_routes_of_one_shape() {
        let mut t = RouteTable::new();
        t.insert("/o/{id}", m(&["GET", "PUT"]).as_deref(), 1)
            .unwrap();
        assert_eq!(
            t.insert("/o/{oid}/", m(&["put"]).as_deref(), 2),
            Err(RouteError::Conflict {
                route: "/o/{oid}/".into(),
                existing: "/o/{id}".into()
            })
        );
        t.insert("/o/{oid}", m(&["POST"]).as_deref(), 3).unwrap();
        t.insert("/o/{oid}", None, 4).unwrap();
        assert!(matches!(
            t.insert("/o/{x}", m(&["ANY"]).as_deref(), 5),
            Err(RouteError::Conflict { .. })
        ));
        t.insert("/o/{p+}", None, 6).unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(
            t.iter().collect::<Vec<_>>(),
            vec![
                ("/o/{id}", &1),
                ("/o/{oid}", &3),
                ("/o/{oid}", &4),
                ("/o/{p+}", &6)
            ]
        );
        let h = t.lookup("/o/7", "POST").unwrap();
        assert_eq!((h.value, &h.params), (&3, &params(&[("oid", "7")])));
        assert_eq!(t.lookup("/o/7", "GET").unwrap().params["id"], "7");
    }

    #[test]
    fn normalise_pattern_gives_shape_keys() {
        assert_eq!(normalise_pattern("/orders/{id}"), "/orders/{}");
        assert_eq!(normalise_pattern("/orders/{oid}/"), "/orders/{}");
        assert_eq!(normalise_pattern("/a/{proxy+}"), "/a/{+}");
        assert_eq!(normalise_pattern("/a/{x}/b/{rest+}/"), "/a/{}/b/{+}");
        assert_eq!(normalise_pattern("/"), "/");
        assert_eq!(normalise_pattern(""), "/");
        assert_eq!(normalise_pattern("/plain"), "/plain");
    }
}
