//! HotSwap's command-line client.
//!
//! The `hotswap` binary flattens [`ClientArgs`] and [`Command`] into its own
//! parser and calls [`run`], which talks to the REST API and returns the
//! process exit code: 0 on success, 1 when the server refused the request or
//! could not be reached, 2 for bad usage or local problems found before any
//! request (a missing directory, an invalid name). [`run_with`] does the same
//! with any writers, for tests.

use std::io::Write;

pub mod args;
pub mod client;
mod commands;
pub mod error;
pub mod output;
pub mod package;

pub use args::{ClientArgs, Command, OutputFormat};
pub use client::Client;
pub use error::{ApiError, CliError, EXIT_API, EXIT_OK, EXIT_USAGE};

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
    let result = match Client::new(&args.url, args.token.as_deref()) {
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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let log = seen.clone();
        tokio::spawn(async move {
            for (status, body) in answers {
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
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
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
}
