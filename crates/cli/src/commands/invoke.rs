//! `hotswap fn invoke`: sends an event, prints the function's payload (or
//! the whole invocation result), a one-line summary and, when asked, the log
//! tail. A function error exits 3.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use super::functions::check_name;
use super::Ctx;
use crate::args::{FnInvokeArgs, OutputFormat};
use crate::client::RawResponse;
use crate::error::CliError;
use crate::output::{self, Detail};

/// How long an invocation may take: the longest function timeout (15
/// minutes) plus room for a cold start and queueing.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(960);

/// How the whole invocation result is shown with `--full`.
pub const RESULT_DETAIL: Detail = Detail {
    order: &[
        "requestId",
        "success",
        "statusCode",
        "wasColdStart",
        "executionTimeMs",
        "billedDurationMs",
        "memoryUsedMB",
        "errorType",
        "errorMessage",
        "logStreamName",
        "body",
    ],
    flatten: &[],
};

/// Where stdin stands when the event may come from it.
pub struct Stdin<'a> {
    /// A terminal is never read implicitly (it would wait for typing).
    pub is_terminal: bool,
    pub reader: &'a mut dyn Read,
}

/// The event's JSON text: `--payload`, `--payload-file` (`-` is stdin),
/// stdin when it is not a terminal (empty means `{}`), else `{}`. The text
/// is checked to be JSON and sent as is.
pub fn payload_text(
    payload: Option<&str>,
    payload_file: Option<&Path>,
    stdin: Stdin<'_>,
) -> Result<String, CliError> {
    let (text, source) = match (payload, payload_file) {
        (Some(p), _) => (p.to_owned(), "--payload".to_owned()),
        (None, Some(path)) if path == Path::new("-") => (read_stdin(stdin.reader)?, "stdin".into()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CliError::usage(format!(
                    "cannot read --payload-file {}: {e}",
                    path.display()
                ))
            })?;
            (text, format!("--payload-file {}", path.display()))
        }
        (None, None) if stdin.is_terminal => return Ok("{}".to_owned()),
        (None, None) => {
            let text = read_stdin(stdin.reader)?;
            if text.trim().is_empty() {
                return Ok("{}".to_owned());
            }
            (text, "stdin".to_owned())
        }
    };
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&text) {
        return Err(CliError::usage(format!(
            "the payload from {source} is not JSON: {e}"
        )));
    }
    Ok(text)
}

fn read_stdin(reader: &mut dyn Read) -> Result<String, CliError> {
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .map_err(|e| CliError::usage(format!("cannot read the payload from stdin: {e}")))?;
    Ok(text)
}

/// The invoke query: qualifier, `result=full` for the whole result,
/// `log=tail` for the log tail.
pub fn invoke_query(
    qualifier: Option<&str>,
    full: bool,
    log_tail: bool,
) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(qualifier) = qualifier {
        q.push(("qualifier", qualifier.to_owned()));
    }
    if full {
        q.push(("result", "full".to_owned()));
    }
    if log_tail {
        q.push(("log", "tail".to_owned()));
    }
    q
}

/// `v2 · warm · 3 ms (billed 3 ms) · 41 MB · request 1f0c…`, from the
/// answer's `X-…` headers (`?` for any that is missing).
pub fn summary_line(resp: &RawResponse) -> String {
    let get = |name: &str| resp.header(name).unwrap_or("?");
    let version = match resp.header("x-executed-version") {
        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => format!("v{v}"),
        Some(v) => v.to_owned(),
        None => "?".to_owned(),
    };
    let start = match resp.header("x-cold-start") {
        Some("true") => "cold",
        Some("false") => "warm",
        _ => "?",
    };
    format!(
        "{version} · {start} · {} ms (billed {} ms) · {} MB · request {}",
        get("x-execution-ms"),
        get("x-billed-ms"),
        get("x-memory-used-mb"),
        get("x-request-id"),
    )
}

/// The decoded `X-Log-Result` header, ending with a newline (`None` when
/// absent or empty).
pub fn log_tail(resp: &RawResponse) -> Option<String> {
    let encoded = resp.header("x-log-result")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if text.is_empty() {
        return None;
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Some(text)
}

/// The function error of an answer, if the function failed: its type from
/// `X-Function-Error` (or the full result's `errorType`) and its message from
/// the body (`errorMessage` of the error payload or of the full result).
pub fn function_error(resp: &RawResponse) -> Option<CliError> {
    let body: Option<Value> = serde_json::from_str(&resp.text).ok();
    let field = |key: &str| {
        body.as_ref()
            .and_then(|b| b.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let failed_in_full = body
        .as_ref()
        .and_then(|b| b.get("success"))
        .and_then(Value::as_bool)
        == Some(false);
    let error_type = match resp.header("x-function-error") {
        Some(t) if !t.is_empty() => t.to_owned(),
        _ if failed_in_full => field("errorType").unwrap_or_else(|| "Unhandled".to_owned()),
        _ => return None,
    };
    let message = field("errorMessage").unwrap_or_else(|| {
        if body.is_some() {
            String::new()
        } else {
            resp.text.trim().chars().take(300).collect()
        }
    });
    Some(CliError::Function {
        error_type,
        message,
    })
}

/// A payload for people: pretty JSON when it is JSON, else the text as is;
/// always ending with a newline (nothing for an empty payload).
pub fn payload_display(text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    let mut s = if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
        output::pretty_json(text)
    } else {
        text.to_owned()
    };
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

pub async fn run(ctx: &mut Ctx<'_>, a: FnInvokeArgs) -> Result<(), CliError> {
    check_name(&a.name)?;
    let payload = {
        let stdin = std::io::stdin();
        let is_terminal = stdin.is_terminal();
        let mut lock = stdin.lock();
        payload_text(
            a.payload.as_deref(),
            a.payload_file.as_deref(),
            Stdin {
                is_terminal,
                reader: &mut lock,
            },
        )?
    };
    let json = ctx.format == OutputFormat::Json;
    let query = invoke_query(a.qualifier.as_deref(), json || a.full, a.log_tail);
    let resp = ctx
        .client
        .post_raw(
            &["functions", &a.name, "invoke"],
            &query,
            payload,
            INVOKE_TIMEOUT,
        )
        .await?;

    if json {
        ctx.out.write_all(payload_display(&resp.text).as_bytes())?;
    } else {
        if a.full {
            match serde_json::from_str::<Value>(&resp.text) {
                Ok(v) => ctx
                    .out
                    .write_all(output::render_object(&v, &RESULT_DETAIL).as_bytes())?,
                Err(_) => ctx.out.write_all(payload_display(&resp.text).as_bytes())?,
            }
        } else {
            ctx.out.write_all(payload_display(&resp.text).as_bytes())?;
        }
        ctx.out.flush()?;
        writeln!(ctx.err, "{}", summary_line(&resp))?;
    }
    if let Some(tail) = log_tail(&resp) {
        ctx.err.write_all(tail.as_bytes())?;
    }
    match function_error(&resp) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

    fn stdin_of(text: &str, is_terminal: bool) -> (bool, std::io::Cursor<Vec<u8>>) {
        (is_terminal, std::io::Cursor::new(text.as_bytes().to_vec()))
    }

    fn payload(
        p: Option<&str>,
        file: Option<&Path>,
        stdin: &str,
        tty: bool,
    ) -> Result<String, CliError> {
        let (is_terminal, mut reader) = stdin_of(stdin, tty);
        payload_text(
            p,
            file,
            Stdin {
                is_terminal,
                reader: &mut reader,
            },
        )
    }

    fn response(headers: &[(&str, &str)], text: &str) -> RawResponse {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        RawResponse {
            status: 200,
            headers: map,
            text: text.to_owned(),
        }
    }

    #[test]
    fn payload_sources() {
        // --payload wins and is sent as written (key order, spacing).
        assert_eq!(
            payload(Some(r#"{"b":1, "a":2}"#), None, "[1]", false).unwrap(),
            r#"{"b":1, "a":2}"#
        );
        // stdin when it is not a terminal; empty stdin is `{}`.
        assert_eq!(payload(None, None, "[1, 2]\n", false).unwrap(), "[1, 2]\n");
        assert_eq!(payload(None, None, "  \n", false).unwrap(), "{}");
        // A terminal is not read.
        assert_eq!(payload(None, None, "[1]", true).unwrap(), "{}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("event.json");
        std::fs::write(&file, r#"{"from":"file"}"#).unwrap();
        assert_eq!(
            payload(None, Some(&file), "[1]", false).unwrap(),
            r#"{"from":"file"}"#
        );
        // `-` reads stdin, even a terminal (asked for explicitly).
        assert_eq!(
            payload(None, Some(Path::new("-")), "\"s\"", true).unwrap(),
            "\"s\""
        );
    }

    #[test]
    fn payloads_that_are_not_json_are_usage_errors() {
        let e = payload(Some("{nope"), None, "", true).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_USAGE);
        assert!(
            e.to_string()
                .starts_with("the payload from --payload is not JSON"),
            "{e}"
        );
        assert!(payload(Some(""), None, "", true).is_err());
        let e = payload(None, None, "hello", false).unwrap_err();
        assert!(e.to_string().contains("from stdin"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.json");
        std::fs::write(&file, "a: 1").unwrap();
        let e = payload(None, Some(&file), "", true).unwrap_err();
        assert!(e.to_string().contains("--payload-file"), "{e}");
        let e = payload(None, Some(&dir.path().join("missing.json")), "", true).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_USAGE);
        assert!(
            e.to_string().starts_with("cannot read --payload-file"),
            "{e}"
        );
    }

    #[test]
    fn query() {
        assert!(invoke_query(None, false, false).is_empty());
        assert_eq!(
            invoke_query(Some("prod"), true, true),
            vec![
                ("qualifier", "prod".to_owned()),
                ("result", "full".to_owned()),
                ("log", "tail".to_owned())
            ]
        );
    }

    #[test]
    fn summary_formatting() {
        let rid = "1f0c6a2e-5d4b-4c1e-9a8f-2b7c3d4e5f60";
        let r = response(
            &[
                ("x-request-id", rid),
                ("x-executed-version", "2"),
                ("x-cold-start", "false"),
                ("x-execution-ms", "3"),
                ("x-billed-ms", "4"),
                ("x-memory-used-mb", "41"),
            ],
            "{}",
        );
        assert_eq!(
            summary_line(&r),
            format!("v2 · warm · 3 ms (billed 4 ms) · 41 MB · request {rid}")
        );
        let r = response(
            &[
                ("x-request-id", "r"),
                ("x-executed-version", "$LATEST"),
                ("x-cold-start", "true"),
                ("x-execution-ms", "120"),
                ("x-billed-ms", "120"),
                ("x-memory-used-mb", "12"),
            ],
            "{}",
        );
        assert_eq!(
            summary_line(&r),
            "$LATEST · cold · 120 ms (billed 120 ms) · 12 MB · request r"
        );
        assert_eq!(
            summary_line(&response(&[], "")),
            "? · ? · ? ms (billed ? ms) · ? MB · request ?"
        );
    }

    #[test]
    fn log_tail_is_decoded() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("line 1\nline 2");
        let r = response(&[("x-log-result", &encoded)], "{}");
        assert_eq!(log_tail(&r).unwrap(), "line 1\nline 2\n");
        assert_eq!(log_tail(&response(&[("x-log-result", "")], "{}")), None);
        assert_eq!(log_tail(&response(&[], "{}")), None);
        assert_eq!(log_tail(&response(&[("x-log-result", "***")], "{}")), None);
    }

    #[test]
    fn function_errors() {
        let ok = response(&[], r#"{"errorType":"looks like one but is a payload"}"#);
        assert!(function_error(&ok).is_none());
        let full_ok = response(&[], r#"{"success":true,"requestId":"r"}"#);
        assert!(function_error(&full_ok).is_none());

        let r = response(
            &[("x-function-error", "ValueError")],
            r#"{"errorType":"ValueError","errorMessage":"bad input: 42","stackTrace":[]}"#,
        );
        let e = function_error(&r).unwrap();
        assert_eq!(e.exit_code(), crate::error::EXIT_FUNCTION);
        assert_eq!(
            e.render(true),
            "error: function error ValueError: bad input: 42\n"
        );

        // The full result: the message is the result's errorMessage.
        let r = response(
            &[("x-function-error", "Sandbox.Timedout")],
            r#"{"success":false,"errorType":"Sandbox.Timedout","errorMessage":"Task timed out after 1 seconds"}"#,
        );
        assert_eq!(
            function_error(&r).unwrap().to_string(),
            "function error Sandbox.Timedout: Task timed out after 1 seconds"
        );
        // Without the header, `success: false` still counts.
        let r = response(&[], r#"{"success":false,"errorType":"Runtime.ExitError"}"#);
        assert_eq!(
            function_error(&r).unwrap().to_string(),
            "function error Runtime.ExitError"
        );
        // A body that is not JSON is the message.
        let r = response(&[("x-function-error", "Unhandled")], "boom\n");
        assert_eq!(
            function_error(&r).unwrap().to_string(),
            "function error Unhandled: boom"
        );
    }

    #[test]
    fn payload_display_pretty_prints_json_only() {
        assert_eq!(
            payload_display(r#"{"b":1,"a":[]}"#),
            "{\n  \"b\": 1,\n  \"a\": []\n}\n"
        );
        assert_eq!(payload_display("\"hi\""), "\"hi\"\n");
        assert_eq!(payload_display("plain text"), "plain text\n");
        assert_eq!(payload_display("two\nlines\n"), "two\nlines\n");
        assert_eq!(payload_display(""), "");
    }
}
