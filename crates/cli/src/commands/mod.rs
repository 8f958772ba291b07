//! The client commands: each module turns its arguments into API requests
//! and prints the answers through [`Ctx`].

use std::io::Write;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::args::{Command, OutputFormat, PageArgs};
use crate::client::{Client, Response};
use crate::error::CliError;
use crate::output::{self, Column, Detail};

mod aliases;
mod deployments;
pub(crate) mod events;
mod functions;
mod invoke;
mod logs;
mod network;
mod queues;
mod runners;
mod tokens;
mod triggers;
mod versions;

/// Runs one command.
pub async fn execute(ctx: &mut Ctx<'_>, cmd: Command) -> Result<(), CliError> {
    match cmd {
        Command::Function(c) => functions::run(ctx, c).await,
        Command::Version(c) => versions::run(ctx, c).await,
        Command::Alias(c) => aliases::run(ctx, c).await,
        Command::Trigger(c) => triggers::run(ctx, c).await,
        Command::Event(c) => events::print(&c, chrono::Utc::now(), ctx.out),
        Command::Runners(a) => runners::run(ctx, a).await,
        Command::Deploy(a) => deployments::deploy(ctx, a).await,
        Command::Deployments(c) => deployments::run(ctx, c).await,
        Command::Token(c) => tokens::run(ctx, c).await,
        Command::Whoami => tokens::whoami(ctx).await,
        Command::Subnet(c) => network::subnets(ctx, c).await,
        Command::SecurityGroup(c) => network::security_groups(ctx, c).await,
        Command::Queue(c) => queues::run(ctx, c).await,
    }
}

/// What a command needs: the API client, the output format, and where to
/// write results (stdout) and notes (stderr).
pub struct Ctx<'a> {
    pub client: Client,
    pub format: OutputFormat,
    pub out: &'a mut (dyn Write + Send),
    pub err: &'a mut (dyn Write + Send),
}

/// `--all` stops after this many pages.
const MAX_PAGES: usize = 10_000;

/// The items of one or more list pages.
#[derive(Debug, Default)]
pub struct Listing {
    /// Each item's JSON text, as received.
    pub raw_items: Vec<String>,
    /// Each item, parsed.
    pub items: Vec<Value>,
    /// Where the next page starts, if there is one not fetched.
    pub next_token: Option<String>,
    /// The answer's text when exactly one page was fetched.
    pub single_page: Option<String>,
}

#[derive(Deserialize)]
struct RawPage<'a> {
    #[serde(borrow)]
    items: Vec<&'a RawValue>,
    #[serde(rename = "nextToken", default)]
    next_token: Option<String>,
}

impl Listing {
    fn add_page(&mut self, resp: &Response) -> Result<(), CliError> {
        let page: RawPage<'_> = serde_json::from_str(&resp.text).map_err(|e| {
            CliError::BadResponse(format!("expected a page {{\"items\": [...]}}: {e}"))
        })?;
        for raw in page.items {
            self.items.push(
                serde_json::from_str(raw.get())
                    .map_err(|e| CliError::BadResponse(e.to_string()))?,
            );
            self.raw_items.push(raw.get().to_owned());
        }
        self.next_token = page.next_token.filter(|t| !t.is_empty());
        Ok(())
    }

    /// The JSON to print: the page as received, or all pages' items as one
    /// page `{ "items": [...], "nextToken": null }`.
    fn json_text(&self) -> String {
        match &self.single_page {
            Some(text) => text.clone(),
            None => format!(
                "{{\"items\":[{}],\"nextToken\":null}}",
                self.raw_items.join(",")
            ),
        }
    }
}

impl Ctx<'_> {
    /// Fetches a list: one page (from `--next-token` if given), or every page
    /// with `--all`.
    pub async fn list(
        &mut self,
        segments: &[&str],
        mut query: Vec<(&'static str, String)>,
        page: &PageArgs,
    ) -> Result<Listing, CliError> {
        if let Some(limit) = page.limit {
            query.push(("limit", limit.to_string()));
        }
        let mut token = page.next_token.clone();
        let mut listing = Listing::default();
        let mut first_page = None;
        let mut pages = 0usize;
        loop {
            let mut q = query.clone();
            if let Some(t) = &token {
                q.push(("nextToken", t.clone()));
            }
            let resp = self.client.get(segments, &q).await?;
            listing.add_page(&resp)?;
            pages += 1;
            if pages == 1 {
                first_page = Some(resp.text);
            }
            match &listing.next_token {
                // A server repeating a token would loop forever: stop there.
                Some(next) if page.all && token.as_ref() != Some(next) && pages < MAX_PAGES => {
                    token = Some(next.clone());
                }
                _ => break,
            }
        }
        listing.single_page = if pages == 1 { first_page } else { None };
        Ok(listing)
    }

    /// Prints a list: a table (or a "none" line) for people, the JSON for
    /// scripts. Tells on stderr how to get the next page when there is one.
    pub fn print_list(
        &mut self,
        listing: &Listing,
        columns: &[Column],
        noun_plural: &str,
    ) -> Result<(), CliError> {
        match self.format {
            OutputFormat::Json => {
                writeln!(self.out, "{}", output::pretty_json(&listing.json_text()))?;
            }
            OutputFormat::Table => {
                if listing.items.is_empty() {
                    writeln!(self.out, "No {noun_plural} found.")?;
                } else {
                    self.out
                        .write_all(output::render_list(&listing.items, columns).as_bytes())?;
                }
                if let Some(next) = &listing.next_token {
                    writeln!(
                        self.err,
                        "More {noun_plural}: add --next-token {next} (or --all for every page)."
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Prints one object: key/value rows for people, the JSON for scripts.
    pub fn print_object(&mut self, resp: &Response, detail: &Detail) -> Result<(), CliError> {
        match self.format {
            OutputFormat::Json => self.print_json(resp),
            OutputFormat::Table => {
                self.out
                    .write_all(output::render_object(&resp.value, detail).as_bytes())?;
                Ok(())
            }
        }
    }

    /// Prints the answer's JSON as received (nothing for an empty body).
    pub fn print_json(&mut self, resp: &Response) -> Result<(), CliError> {
        if !resp.is_empty() {
            writeln!(self.out, "{}", output::pretty_json(&resp.text))?;
        }
        Ok(())
    }

    /// For deletes: a one-line confirmation for people; the body (normally
    /// none, 204) for scripts.
    pub fn print_done(&mut self, resp: &Response, message: &str) -> Result<(), CliError> {
        match self.format {
            OutputFormat::Json => self.print_json(resp),
            OutputFormat::Table => {
                writeln!(self.out, "{message}")?;
                Ok(())
            }
        }
    }
}

/// Adds `key: value` to a JSON object when `value` is `Some`.
pub(crate) fn put_opt<T: Into<Value>>(
    body: &mut serde_json::Map<String, Value>,
    key: &str,
    value: Option<T>,
) {
    if let Some(v) = value {
        body.insert(key.to_owned(), v.into());
    }
}

/// `[(k, v)]` as a JSON object; a later duplicate key wins.
pub(crate) fn pairs_to_object(pairs: &[(String, String)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// A number as JSON: whole numbers without a fraction (`90`, not `90.0`).
pub(crate) fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::from(x as i64)
    } else {
        Value::from(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn helpers() {
        assert_eq!(number(90.0), json!(90));
        assert_eq!(number(12.5), json!(12.5));
        assert_eq!(
            pairs_to_object(&[("A".into(), "1".into()), ("A".into(), "2".into())]),
            json!({"A": "2"})
        );
        let mut m = serde_json::Map::new();
        put_opt(&mut m, "a", Some(1));
        put_opt::<i32>(&mut m, "b", None);
        assert_eq!(Value::Object(m), json!({"a": 1}));
    }

    #[test]
    fn listing_merges_pages_as_received() {
        let page = |text: &str| Response {
            status: 200,
            text: text.to_owned(),
            value: serde_json::from_str(text).unwrap(),
        };
        let mut l = Listing::default();
        l.add_page(&page(r#"{"items":[{"z":1,"a":2}],"nextToken":"t1"}"#))
            .unwrap();
        assert_eq!(l.next_token.as_deref(), Some("t1"));
        l.add_page(&page(r#"{"items":[{"b":3.0}],"nextToken":null}"#))
            .unwrap();
        assert_eq!(l.next_token, None);
        assert_eq!(l.items.len(), 2);
        assert_eq!(
            l.json_text(),
            r#"{"items":[{"z":1,"a":2},{"b":3.0}],"nextToken":null}"#
        );
        let bad = Response {
            status: 200,
            text: "[1]".into(),
            value: json!([1]),
        };
        assert!(matches!(l.add_page(&bad), Err(CliError::BadResponse(_))));
    }
}
