//! `hotswap queue …`: the embedded queue.

use std::io::{IsTerminal, Read};
use std::path::Path;

use serde_json::{json, Value};

use super::{pairs_to_object, Ctx};
use crate::args::{OutputFormat, QueueCommand};
use crate::error::CliError;
use crate::output::{col, Column, Detail, Fmt};

pub const QUEUE_COLUMNS: &[Column] = &[
    col("NAME", "queueName", Fmt::Text),
    col("OWNER", "ownerId", Fmt::Text),
    col("DEPTH", "depth", Fmt::Text),
    col("IN FLIGHT", "inFlight", Fmt::Text),
    col("OLDEST", "oldestAgeSeconds", Fmt::Unit("s")),
    col("CREATED", "createdAt", Fmt::Time),
];

const QUEUE_DETAIL: Detail = Detail {
    order: &[
        "queueName",
        "ownerId",
        "depth",
        "inFlight",
        "oldestAgeSeconds",
        "createdAt",
    ],
    flatten: &[],
};

/// The body of `POST /v1/queues/{name}/messages`.
pub fn send_body(body: &str, attributes: &[(String, String)]) -> Value {
    if attributes.is_empty() {
        json!({ "body": body })
    } else {
        json!({ "body": body, "attributes": pairs_to_object(attributes) })
    }
}

/// The message body: the argument, or the file (`-`: stdin), as text.
fn body_text(body: Option<String>, file: Option<&Path>) -> Result<String, CliError> {
    match (body, file) {
        (Some(b), _) => Ok(b),
        (None, Some(path)) if path == Path::new("-") => {
            let mut stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Err(CliError::usage(
                    "--file - reads the body from stdin, which is a terminal",
                ));
            }
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(|e| CliError::usage(format!("cannot read the body from stdin: {e}")))?;
            Ok(text)
        }
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| CliError::usage(format!("cannot read --file {}: {e}", path.display()))),
        (None, None) => Err(CliError::usage("give the message BODY or --file PATH")),
    }
}

pub async fn run(ctx: &mut Ctx<'_>, cmd: QueueCommand) -> Result<(), CliError> {
    match cmd {
        QueueCommand::Send {
            name,
            body,
            file,
            attributes,
        } => {
            let text = body_text(body, file.as_deref())?;
            let resp = ctx
                .client
                .post(
                    &["queues", &name, "messages"],
                    &send_body(&text, &attributes),
                )
                .await?;
            match ctx.format {
                OutputFormat::Json => ctx.print_json(&resp),
                OutputFormat::Table => {
                    let id = resp.value["messageId"].as_str().unwrap_or("?");
                    writeln!(ctx.out, "Sent message {id} to queue {name}.")?;
                    Ok(())
                }
            }
        }
        QueueCommand::List { page } => {
            let listing = ctx.list(&["queues"], Vec::new(), &page).await?;
            ctx.print_list(&listing, QUEUE_COLUMNS, "queues")
        }
        QueueCommand::Get { name } => {
            let resp = ctx.client.get(&["queues", &name], &[]).await?;
            ctx.print_object(&resp, &QUEUE_DETAIL)
        }
        QueueCommand::Purge { name } => {
            let resp = ctx.client.delete(&["queues", &name, "messages"]).await?;
            let purged = resp.value["purged"].as_u64().unwrap_or(0);
            let noun = if purged == 1 { "message" } else { "messages" };
            ctx.print_done(&resp, &format!("Purged {purged} {noun} from queue {name}."))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Command;
    use clap::{FromArgMatches, Subcommand};

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        let cmd = Command::augment_subcommands(clap::Command::new("hotswap"));
        let m = cmd.try_get_matches_from(std::iter::once("hotswap").chain(args.iter().copied()))?;
        Ok(Command::from_arg_matches(&m).unwrap())
    }

    #[test]
    fn send_parses_body_file_and_attributes() {
        let Command::Queue(QueueCommand::Send {
            name,
            body,
            file,
            attributes,
        }) = parse(&[
            "queue",
            "send",
            "orders",
            "hello",
            "--attribute",
            "a=1",
            "--attribute",
            "b=x=y",
        ])
        .unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (name.as_str(), body.as_deref(), file),
            ("orders", Some("hello"), None)
        );
        assert_eq!(
            send_body("hello", &attributes),
            json!({"body": "hello", "attributes": {"a": "1", "b": "x=y"}})
        );
        assert_eq!(send_body("x", &[]), json!({"body": "x"}));
        assert!(matches!(
            parse(&["queue", "send", "orders", "--file", "m.json"]).unwrap(),
            Command::Queue(QueueCommand::Send {
                body: None,
                file: Some(_),
                ..
            })
        ));
        // A body or a file, not both, not neither.
        for bad in [
            &["queue", "send", "orders"][..],
            &["queue", "send", "orders", "b", "--file", "f"],
            &["queue", "send", "orders", "b", "--attribute", "novalue"],
        ] {
            assert_eq!(parse(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
        for ok in [
            &["queue", "list"][..],
            &["queue", "get", "q"],
            &["queue", "purge", "q"],
        ] {
            assert!(parse(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn the_body_comes_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.txt");
        std::fs::write(&path, "from a file\n").unwrap();
        assert_eq!(body_text(None, Some(&path)).unwrap(), "from a file\n");
        assert_eq!(body_text(Some("arg".into()), None).unwrap(), "arg");
        let e = body_text(None, Some(&dir.path().join("missing"))).unwrap_err();
        assert!(e.to_string().contains("cannot read --file"), "{e}");
    }
}
