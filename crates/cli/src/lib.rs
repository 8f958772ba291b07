//! HotSwap's command-line client.
//!
//! The `hotswap` binary flattens [`ClientArgs`] and [`Command`] into its own
//! parser and calls [`run`], which talks to the REST API and returns the
//! process exit code: 0 on success, 1 when the server refused the request or
//! could not be reached, 2 for bad usage or local problems found before any
//! request (a missing directory, an invalid name), 3 when an invoked function
//! itself failed (`hotswap fn invoke`). [`run_with`] does the same with any
//! writers, for tests.

use std::io::Write;

pub mod args;
pub mod client;
mod commands;
pub mod error;
pub mod output;
pub mod package;

pub use args::{ClientArgs, Command, OutputFormat};
pub use client::Client;
pub use error::{ApiError, CliError, EXIT_API, EXIT_FUNCTION, EXIT_OK, EXIT_USAGE};

/// Runs a client command, printing results on stdout and errors on stderr;
/// returns the exit code.
pub async fn run(args: &ClientArgs, cmd: Command) -> i32 {
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    run_with(args, cmd, &mut out, &mut err).await
}

/// [`run`] with the given writers for results (`out`) and for errors and
/// notes (`err`).
pub async fn run_with(
    args: &ClientArgs,
    cmd: Command,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> i32 {
    let token_given = args.token.as_deref().is_some_and(|t| !t.trim().is_empty());
    let result = match cmd {
        // Sample events need no server, nor a valid --url.
        Command::Event(c) => commands::events::print(&c, chrono::Utc::now(), &mut *out),
        cmd => match Client::new(&args.url, args.token.as_deref())
            .map(|c| c.with_owner(args.owner.as_deref()))
        {
            Ok(client) => {
                let mut ctx = commands::Ctx {
                    client,
                    format: args.output,
                    out: &mut *out,
                    err: &mut *err,
                };
                commands::execute(&mut ctx, cmd).await
            }
            Err(e) => Err(e),
        },
    };
    let result = result.and_then(|()| out.flush().map_err(CliError::from));
    match result {
        Ok(()) => EXIT_OK,
        // A reader that went away (`hotswap fn list | head -1`) needs no
        // message.
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => EXIT_API,
        Err(e) => {
            // Nothing more can be done if stderr itself is gone.
            let _ = err.write_all(e.render(token_given).as_bytes());
            let _ = err.flush();
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    //! `run_with` end to end against a tiny canned HTTP server.

    use super::*;
    use clap::{FromArgMatches, Subcommand};
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// What the fake server saw: request line, headers and body.
    #[derive(Debug, Default, Clone)]
    struct Seen {
        requests: Vec<(String, String, String)>,
    }

    /// Serves the canned `(status, body)` answers in order, one per
    /// connection, and records the requests.
    async fn fake_server(answers: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<Seen>>) {
        fake_server_with_headers(
            answers
                .into_iter()
                .map(|(status, body)| (status, Vec::new(), body))
                .collect(),
        )
        .await
    }

    /// A canned answer: status, extra headers, body.
    type Answer = (u16, Vec<(&'static str, String)>, &'static str);

    /// [`fake_server`] with extra response headers per answer.
    async fn fake_server_with_headers(answers: Vec<Answer>) -> (String, Arc<Mutex<Seen>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let log = seen.clone();
        tokio::spawn(async move {
            for (status, extra, body) in answers {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body_in) = loop {
                    let n = sock.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(i) = text.find("\r\n\r\n") {
                        let head = text[..i].to_owned();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() >= i + 4 + len {
                            break (head, text[i + 4..i + 4 + len].to_owned());
                        }
                    }
                    if n == 0 {
                        panic!("connection closed early");
                    }
                };
                let (line, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
                log.lock()
                    .unwrap()
                    .requests
                    .push((line.to_owned(), headers.to_owned(), body_in));
                let extra: String = extra.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                sock.write_all(reply.as_bytes()).await.unwrap();
                sock.shutdown().await.ok();
            }
        });
        (url, seen)
    }

    fn command(args: &[&str]) -> Command {
        let cmd = Command::augment_subcommands(clap::Command::new("hotswap"));
        let m = cmd
            .try_get_matches_from(std::iter::once("hotswap").chain(args.iter().copied()))
            .unwrap();
        Command::from_arg_matches(&m).unwrap()
    }

    async fn run_capture(args: &ClientArgs, cmd: &[&str]) -> (i32, String, String) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = run_with(args, command(cmd), &mut out, &mut err).await;
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    fn client_args(url: &str, output: OutputFormat) -> ClientArgs {
        ClientArgs {
            url: url.to_owned(),
            token: Some("secret".into()),
            output,
            owner: None,
        }
    }

    const PAGE: &str = r#"{"items":[{"name":"hello","runtime":"Python311","handler":"app.handler","memorySize":256,"timeout":30,"publishedVersion":null,"ownerId":"alice","updatedAt":"2024-05-02T08:30:05Z"}],"nextToken":null}"#;

    #[tokio::test]
    async fn list_as_table_and_json() {
        let (url, seen) = fake_server(vec![(200, PAGE), (200, PAGE)]).await;
        let (code, out, err) = run_capture(
            &client_args(&url, OutputFormat::Table),
            &["fn", "list", "--tag", "team=web"],
        )
        .await;
        assert_eq!((code, err.as_str()), (0, ""));
        assert!(out.starts_with("NAME"), "{out}");
        assert!(out.contains("hello") && out.contains("256MB") && out.contains("alice"));

        let (code, out, _) =
            run_capture(&client_args(&url, OutputFormat::Json), &["fn", "list"]).await;
        assert_eq!(code, 0);
        // Key order as the server sent it.
        assert!(out.find("\"name\"").unwrap() < out.find("\"runtime\"").unwrap());
        assert!(out.find("\"runtime\"").unwrap() < out.find("\"handler\"").unwrap());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["items"][0]["name"], "hello");

        let seen = seen.lock().unwrap();
        let (line, headers, _) = &seen.requests[0];
        assert_eq!(line, "GET /v1/functions?tag=team%3Dweb HTTP/1.1");
        assert!(headers
            .to_lowercase()
            .contains("authorization: bearer secret"));
    }

    #[tokio::test]
    async fn all_follows_next_token() {
        let (url, seen) = fake_server(vec![
            (200, r#"{"items":[{"nodeId":"a"}],"nextToken":"t2"}"#),
            (200, r#"{"items":[{"nodeId":"b"}],"nextToken":null}"#),
        ])
        .await;
        let (code, out, _) = run_capture(
            &client_args(&url, OutputFormat::Json),
            &["runners", "list", "--all", "--limit", "1"],
        )
        .await;
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["items"].as_array().unwrap().len(), 2);
        assert_eq!(v["nextToken"], serde_json::Value::Null);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.requests[0].0, "GET /v1/runners?limit=1 HTTP/1.1");
        assert_eq!(
            seen.requests[1].0,
            "GET /v1/runners?limit=1&nextToken=t2 HTTP/1.1"
        );
    }

    #[tokio::test]
    async fn api_errors_go_to_stderr_with_exit_1() {
        let (url, _) = fake_server(vec![(
            404,
            r#"{"code":"NotFound","message":"function 'x' not found","errors":[]}"#,
        )])
        .await;
        let (code, out, err) =
            run_capture(&client_args(&url, OutputFormat::Table), &["fn", "get", "x"]).await;
        assert_eq!(code, EXIT_API);
        assert_eq!(out, "");
        assert_eq!(err, "error: NotFound: function 'x' not found\n");
    }

    #[tokio::test]
    async fn create_sends_the_zip_and_prints_the_function() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("hello");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("app.py"), "def handler(e, c):\n    return e\n").unwrap();
        let (url, seen) = fake_server(vec![(
            201,
            r#"{"name":"hello","runtime":"Python311","handler":"app.handler","memorySize":256}"#,
        )])
        .await;
        let path = dir.to_str().unwrap();
        let (code, out, err) = run_capture(
            &client_args(&url, OutputFormat::Table),
            &[
                "fn",
                "create",
                path,
                "--runtime",
                "python311",
                "--handler",
                "app.handler",
            ],
        )
        .await;
        assert_eq!((code, err.as_str()), (0, ""));
        assert!(out.lines().next().unwrap().starts_with("name"), "{out}");

        let seen = seen.lock().unwrap();
        let (line, _, body) = &seen.requests[0];
        assert_eq!(line, "POST /v1/functions HTTP/1.1");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["name"], "hello");
        assert_eq!(body["runtime"], "Python311");
        use base64::Engine;
        let zip = base64::engine::general_purpose::STANDARD
            .decode(body["code"]["zipFile"].as_str().unwrap())
            .unwrap();
        assert_eq!(zip, package::zip_dir(&dir).unwrap());
    }

    #[tokio::test]
    async fn local_problems_exit_2_without_a_request() {
        // Nothing listens here: a request would fail with exit 1, not 2.
        let args = client_args("http://127.0.0.1:9", OutputFormat::Table);
        let (code, _, err) = run_capture(
            &args,
            &[
                "fn",
                "create",
                "/no/such/dir",
                "--runtime",
                "node20",
                "--handler",
                "i.h",
                "--name",
                "x",
            ],
        )
        .await;
        assert_eq!(code, EXIT_USAGE);
        assert!(
            err.starts_with("error: cannot read /no/such/dir: no such file"),
            "{err}"
        );

        let (code, _, err) = run_capture(&args, &["fn", "update", "x"]).await;
        assert_eq!(code, EXIT_USAGE);
        assert!(err.contains("nothing to update"));

        let bad_url = client_args("localhost:8080", OutputFormat::Table);
        let (code, _, err) = run_capture(&bad_url, &["whoami"]).await;
        assert_eq!(code, EXIT_USAGE);
        assert!(err.contains("invalid --url"));
    }

    const HTTP_TRIGGER: &str = r#"{"triggerId":"t1","functionName":"orders","functionId":"f1","targetVersion":"$LATEST","type":"Http","isEnabled":true,"config":{"httpPath":"/orders/{id}"},"createdAt":"2031-01-01T00:00:00Z","lastExecutedAt":null,"executionCount":0,"failureCount":0,"url":"http://127.0.0.1:8080/fn/orders/{id}","state":{"status":"Active","lastError":null}}"#;
    const SCHEDULED_TRIGGER: &str = r#"{"triggerId":"t2","functionName":"report","functionId":"f2","targetVersion":"$LATEST","type":"Scheduled","isEnabled":true,"config":{"scheduleExpression":"cron(0 8 * * ? *)"},"createdAt":"2031-01-01T00:00:00Z","lastExecutedAt":null,"executionCount":0,"failureCount":0,"nextRunAt":"2031-03-30T08:00:00Z","state":{"status":"Scheduled","lastError":null}}"#;

    #[tokio::test]
    async fn triggers_show_their_url_and_next_run() {
        let page: &'static str = Box::leak(
            format!(r#"{{"items":[{HTTP_TRIGGER},{SCHEDULED_TRIGGER}],"nextToken":null}}"#)
                .into_boxed_str(),
        );
        let (url, seen) = fake_server(vec![
            (201, HTTP_TRIGGER),
            (200, SCHEDULED_TRIGGER),
            (200, page),
            (200, SCHEDULED_TRIGGER),
        ])
        .await;
        let mut admin = client_args(&url, OutputFormat::Table);
        admin.owner = Some("alice".into());
        let (code, out, err) = run_capture(
            &admin,
            &[
                "trigger",
                "create",
                "orders",
                "--type",
                "http",
                "--path",
                "/orders/{id}",
                "--auth",
                "token",
            ],
        )
        .await;
        assert_eq!((code, err.as_str()), (0, ""));
        assert!(
            out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["url", "http://127.0.0.1:8080/fn/orders/{id}"]),
            "{out}"
        );

        let args = client_args(&url, OutputFormat::Table);
        let (code, out, _) = run_capture(&args, &["trigger", "get", "t2"]).await;
        assert_eq!(code, 0);
        assert!(
            out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["nextRunAt", "2031-03-30T08:00:00Z"]),
            "{out}"
        );

        let (code, out, _) =
            run_capture(&admin, &["trigger", "list", "--function", "orders"]).await;
        assert_eq!(code, 0);
        assert!(
            out.lines().next().unwrap().contains("URL / NEXT RUN"),
            "{out}"
        );
        assert!(out.contains("http://127.0.0.1:8080/fn/orders/{id}"));
        assert!(out.contains("2031-03-30 08:00:00"));

        // JSON passes the server's answer through.
        let (code, out, _) = run_capture(
            &client_args(&url, OutputFormat::Json),
            &["trigger", "get", "t2"],
        )
        .await;
        assert_eq!(code, 0);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&out).unwrap(),
            serde_json::from_str::<serde_json::Value>(SCHEDULED_TRIGGER).unwrap()
        );

        let seen = seen.lock().unwrap();
        let (line, _, body) = &seen.requests[0];
        // The owner goes in the body: POST /v1/triggers takes no ?owner=.
        assert_eq!(line, "POST /v1/triggers HTTP/1.1");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["ownerId"], "alice");
        assert_eq!(body["config"]["authType"], "Token");
        assert_eq!(seen.requests[1].0, "GET /v1/triggers/t2 HTTP/1.1");
        assert_eq!(
            seen.requests[2].0,
            "GET /v1/triggers?functionName=orders&owner=alice HTTP/1.1"
        );
    }

    #[tokio::test]
    async fn sample_events_need_no_server() {
        // Not even a valid --url.
        let args = client_args("localhost:8080", OutputFormat::Table);
        let (code, out, err) = run_capture(&args, &["event", "sqs", "--body", "hi"]).await;
        assert_eq!((code, err.as_str()), (0, ""));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["Records"][0]["body"], "hi");
        assert_eq!(
            v["Records"][0]["md5OfBody"],
            "49f68a5c8493ec2c0bf489821c21fc3b"
        );
    }

    #[tokio::test]
    async fn deletes_confirm_in_one_line() {
        let (url, seen) = fake_server(vec![(204, ""), (204, "")]).await;
        let (code, out, _) = run_capture(
            &client_args(&url, OutputFormat::Table),
            &["version", "delete", "hello", "latest"],
        )
        .await;
        assert_eq!(
            (code, out.as_str()),
            (0, "Deleted version $LATEST of 'hello'.\n")
        );
        let (code, out, _) = run_capture(
            &client_args(&url, OutputFormat::Json),
            &["alias", "delete", "hello", "prod"],
        )
        .await;
        assert_eq!((code, out.as_str()), (0, ""));
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.requests[0].0,
            "DELETE /v1/functions/hello/versions/$LATEST HTTP/1.1"
        );
        assert_eq!(
            seen.requests[1].0,
            "DELETE /v1/functions/hello/aliases/prod HTTP/1.1"
        );
    }

    /// The `X-…` headers of an invocation answer.
    fn invoke_headers(
        cold: bool,
        error: Option<&str>,
        tail: Option<&str>,
    ) -> Vec<(&'static str, String)> {
        use base64::Engine;
        let mut h = vec![
            (
                "x-request-id",
                "1f0c6a2e-5d4b-4c1e-9a8f-2b7c3d4e5f60".to_owned(),
            ),
            ("x-executed-version", "2".to_owned()),
            ("x-cold-start", cold.to_string()),
            ("x-execution-ms", "3".to_owned()),
            ("x-billed-ms", "3".to_owned()),
            ("x-memory-used-mb", "41".to_owned()),
        ];
        if let Some(e) = error {
            h.push(("x-function-error", e.to_owned()));
        }
        if let Some(t) = tail {
            h.push((
                "x-log-result",
                base64::engine::general_purpose::STANDARD.encode(t),
            ));
        }
        h
    }

    #[tokio::test]
    async fn invoke_prints_payload_summary_and_tail() {
        let (url, seen) = fake_server_with_headers(vec![(
            200,
            invoke_headers(false, None, Some("hello from the handler\n")),
            r#"{"b":1,"a":"x"}"#,
        )])
        .await;
        let (code, out, err) = run_capture(
            &client_args(&url, OutputFormat::Table),
            &[
                "fn",
                "invoke",
                "hello",
                "--qualifier",
                "prod",
                "--payload",
                r#"{"z": 1, "a": 2}"#,
                "--log-tail",
            ],
        )
        .await;
        assert_eq!(code, EXIT_OK, "{err}");
        assert_eq!(out, "{\n  \"b\": 1,\n  \"a\": \"x\"\n}\n");
        assert_eq!(
            err,
            "v2 · warm · 3 ms (billed 3 ms) · 41 MB · request 1f0c6a2e-5d4b-4c1e-9a8f-2b7c3d4e5f60\nhello from the handler\n"
        );
        let seen = seen.lock().unwrap();
        let (line, headers, body) = &seen.requests[0];
        assert_eq!(
            line,
            "POST /v1/functions/hello/invoke?qualifier=prod&log=tail HTTP/1.1"
        );
        assert!(headers
            .to_lowercase()
            .contains("content-type: application/json"));
        assert_eq!(
            body, r#"{"z": 1, "a": 2}"#,
            "the payload is sent as written"
        );
    }

    #[tokio::test]
    async fn invoke_function_errors_exit_3() {
        let error_body = r#"{"errorType":"ValueError","errorMessage":"bad input: 42","stackTrace":["  File \"app.py\""]}"#;
        let full = r#"{"success":false,"statusCode":200,"body":"{}","headers":{},"executionTimeMs":2,"billedDurationMs":2,"memoryUsedMB":40,"wasColdStart":true,"errorMessage":"bad input: 42","errorType":"ValueError","logStreamName":"s","requestId":"r"}"#;
        let (url, seen) = fake_server_with_headers(vec![
            (
                200,
                invoke_headers(true, Some("ValueError"), None),
                error_body,
            ),
            (200, invoke_headers(true, Some("ValueError"), None), full),
        ])
        .await;
        let (code, out, err) = run_capture(
            &client_args(&url, OutputFormat::Table),
            &["fn", "invoke", "hello", "--payload", "{}"],
        )
        .await;
        assert_eq!(code, EXIT_FUNCTION);
        assert!(out.contains("\"errorType\": \"ValueError\""), "{out}");
        let lines: Vec<&str> = err.lines().collect();
        assert!(lines[0].starts_with("v2 · cold · "), "{err}");
        assert_eq!(lines[1], "error: function error ValueError: bad input: 42");

        let (code, out, err) = run_capture(
            &client_args(&url, OutputFormat::Json),
            &["fn", "invoke", "hello", "--payload", "[]"],
        )
        .await;
        assert_eq!(code, EXIT_FUNCTION);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["success"], false);
        // Keys in the server's order.
        assert!(out.find("\"success\"").unwrap() < out.find("\"requestId\"").unwrap());
        assert_eq!(err, "error: function error ValueError: bad input: 42\n");
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.requests[1].0,
            "POST /v1/functions/hello/invoke?result=full HTTP/1.1"
        );
    }

    #[tokio::test]
    async fn invoke_full_table_and_platform_errors() {
        let full = r#"{"success":true,"statusCode":200,"body":"{\"ok\":true}","headers":{},"executionTimeMs":2,"billedDurationMs":2,"memoryUsedMB":40,"wasColdStart":false,"errorMessage":null,"errorType":null,"logStreamName":"s","requestId":"r"}"#;
        let (url, _) = fake_server_with_headers(vec![
            (200, invoke_headers(false, None, None), full),
            (
                429,
                Vec::new(),
                r#"{"code":"TooManyRequests","message":"function 'hello' is at its concurrency limit","errors":[]}"#,
            ),
        ])
        .await;
        let args = client_args(&url, OutputFormat::Table);
        let (code, out, _) = run_capture(
            &args,
            &["fn", "invoke", "hello", "--payload", "{}", "--full"],
        )
        .await;
        assert_eq!(code, EXIT_OK);
        let first: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(first, ["requestId", "r"]);
        assert!(out.contains("wasColdStart"), "{out}");

        let (code, out, err) =
            run_capture(&args, &["fn", "invoke", "hello", "--payload", "{}"]).await;
        assert_eq!((code, out.as_str()), (EXIT_API, ""));
        assert_eq!(
            err,
            "error: TooManyRequests: function 'hello' is at its concurrency limit\n"
        );

        // A payload that is not JSON: exit 2, nothing sent (nothing listens
        // on port 9).
        let args = client_args("http://127.0.0.1:9", OutputFormat::Table);
        let (code, _, err) =
            run_capture(&args, &["fn", "invoke", "hello", "--payload", "{oops"]).await;
        assert_eq!(code, EXIT_USAGE);
        assert!(
            err.starts_with("error: the payload from --payload is not JSON"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn logs_as_lines_and_json_lines() {
        const LOGS: &str = r#"{"items":[{"timestamp":"2024-05-01T12:00:00.123456Z","functionName":"hello","version":"$LATEST","logStreamName":"s","requestId":"1f0c6a2e-5d4b","stream":"stdout","message":"hi there"},{"timestamp":"2024-05-01T12:00:01Z","functionName":"hello","version":"2","logStreamName":"s","requestId":null,"stream":"stderr","message":"boot"}],"nextToken":null}"#;
        let (url, seen) = fake_server(vec![(200, LOGS), (200, LOGS)]).await;
        let (code, out, err) = run_capture(
            &client_args(&url, OutputFormat::Table),
            &[
                "fn",
                "logs",
                "hello",
                "--request-id",
                "1f0c6a2e-5d4b",
                "--limit",
                "2",
            ],
        )
        .await;
        assert_eq!((code, err.as_str()), (0, ""));
        assert_eq!(
            out,
            "2024-05-01T12:00:00.123Z [$LATEST] 1f0c6a2e stdout: hi there\n2024-05-01T12:00:01.000Z [2] - stderr: boot\n"
        );
        let (code, out, _) = run_capture(
            &client_args(&url, OutputFormat::Json),
            &[
                "fn",
                "logs",
                "hello",
                "--since",
                "2024-05-01T12:00:00Z",
                "--version",
                "2",
            ],
        )
        .await;
        assert_eq!(code, 0);
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["message"], "hi there");
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.requests[0].0,
            "GET /v1/functions/hello/logs?requestId=1f0c6a2e-5d4b&limit=2 HTTP/1.1"
        );
        assert_eq!(
            seen.requests[1].0,
            "GET /v1/functions/hello/logs?version=2&since=2024-05-01T12%3A00%3A00Z HTTP/1.1"
        );
    }

    #[tokio::test]
    async fn follow_polls_from_the_newest_line_and_prints_each_once() {
        const PAGE1: &str = r#"{"items":[{"timestamp":"2024-05-01T12:00:00.5Z","requestId":"r1","version":"$LATEST","stream":"stdout","message":"one"}],"nextToken":null}"#;
        const PAGE2: &str = r#"{"items":[{"timestamp":"2024-05-01T12:00:00.5Z","requestId":"r1","version":"$LATEST","stream":"stdout","message":"one"},{"timestamp":"2024-05-01T12:00:00.5Z","requestId":"r2","version":"$LATEST","stream":"stdout","message":"two"}],"nextToken":null}"#;
        // The third poll fails, which ends the command (deterministically).
        let (url, seen) = fake_server(vec![
            (200, PAGE1),
            (200, PAGE2),
            (
                404,
                r#"{"code":"NotFound","message":"function 'hello' not found","errors":[]}"#,
            ),
        ])
        .await;
        let (code, out, err) = run_capture(
            &client_args(&url, OutputFormat::Table),
            &["fn", "logs", "hello", "--follow", "--limit", "5"],
        )
        .await;
        assert_eq!(code, EXIT_API, "{err}");
        assert_eq!(
            out,
            "2024-05-01T12:00:00.500Z [$LATEST] r1 stdout: one\n2024-05-01T12:00:00.500Z [$LATEST] r2 stdout: two\n"
        );
        assert_eq!(err, "error: NotFound: function 'hello' not found\n");
        let seen = seen.lock().unwrap();
        let lines: Vec<&str> = seen.requests.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(
            lines,
            [
                "GET /v1/functions/hello/logs?limit=5 HTTP/1.1",
                "GET /v1/functions/hello/logs?since=2024-05-01T12%3A00%3A00.500Z&limit=1000 HTTP/1.1",
                "GET /v1/functions/hello/logs?since=2024-05-01T12%3A00%3A00.500Z&limit=1000 HTTP/1.1",
            ]
        );
    }

    /// A stdout whose reader went away.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn follow_ends_quietly_when_stdout_is_closed() {
        const PAGE: &str =
            r#"{"items":[{"timestamp":"2024-05-01T12:00:00Z","message":"one"}],"nextToken":null}"#;
        let (url, _) = fake_server(vec![(200, PAGE)]).await;
        let mut err = Vec::new();
        let code = run_with(
            &client_args(&url, OutputFormat::Json),
            command(&["fn", "logs", "hello", "-f"]),
            &mut ClosedPipe,
            &mut err,
        )
        .await;
        assert_eq!(
            (code, String::from_utf8(err).unwrap()),
            (EXIT_OK, String::new())
        );
    }
}
