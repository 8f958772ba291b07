//! `hotswap event …`: sample events of each trigger shape, printed as JSON
//! to pipe into `hotswap fn invoke`. No server is involved.

use std::io::Write;

use chrono::{DateTime, Utc};
use hotswap_triggers::events;
use serde_json::Value;

use crate::args::EventCommand;
use crate::error::CliError;

/// The sample event of `cmd`, at time `now`.
pub fn sample(cmd: &EventCommand, now: DateTime<Utc>) -> Value {
    match cmd {
        EventCommand::Http { method, path, body } => {
            events::sample_http(method, path, body.as_deref(), now)
        }
        EventCommand::Schedule => events::sample_schedule(now),
        EventCommand::Sqs { bodies, queue } => {
            events::sample_sqs(&or_sample(bodies, events::SAMPLE_SQS_BODY), queue, now)
        }
        EventCommand::Kinesis {
            records,
            partition_key,
            stream,
        } => events::sample_kinesis(
            &or_sample(records, events::SAMPLE_KINESIS_DATA),
            partition_key,
            stream,
            now,
        ),
    }
}

/// The values given, or the one sample value.
fn or_sample(given: &[String], sample: &str) -> Vec<String> {
    if given.is_empty() {
        vec![sample.to_owned()]
    } else {
        given.to_vec()
    }
}

/// Prints the sample event as pretty JSON (whatever the output format: the
/// event is the result).
pub fn print(
    cmd: &EventCommand,
    now: DateTime<Utc>,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    writeln!(out, "{:#}", sample(cmd, now))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Command;
    use clap::{FromArgMatches, Subcommand};

    fn parse(args: &[&str]) -> EventCommand {
        let cmd = Command::augment_subcommands(clap::Command::new("hotswap"));
        let m = cmd
            .try_get_matches_from(["hotswap", "event"].into_iter().chain(args.iter().copied()))
            .unwrap();
        match Command::from_arg_matches(&m).unwrap() {
            Command::Event(e) => e,
            other => panic!("{other:?}"),
        }
    }

    fn now() -> DateTime<Utc> {
        "2031-05-05T10:20:42Z".parse().unwrap()
    }

    #[test]
    fn http_defaults_and_flags() {
        let e = sample(&parse(&["http"]), now());
        assert_eq!(e["requestContext"]["http"]["method"], "GET");
        assert_eq!(e["rawPath"], "/");
        assert!(e.get("body").is_none());
        let e = sample(
            &parse(&[
                "http",
                "--method",
                "post",
                "--path",
                "/orders?x=1",
                "--body",
                r#"{"id":1}"#,
            ]),
            now(),
        );
        assert_eq!(e["requestContext"]["http"]["method"], "POST");
        assert_eq!(e["rawPath"], "/orders");
        assert_eq!(e["rawQueryString"], "x=1");
        assert_eq!(e["body"], r#"{"id":1}"#);
        assert_eq!(e["version"], "2.0");
    }

    #[test]
    fn schedule_sqs_and_kinesis() {
        let e = sample(&parse(&["schedule"]), now());
        assert_eq!(e["detail-type"], "Scheduled Event");
        assert_eq!(e["time"], "2031-05-05T10:20:00Z");

        let e = sample(&parse(&["sqs"]), now());
        assert_eq!(e["Records"].as_array().unwrap().len(), 1);
        assert_eq!(e["Records"][0]["body"], events::SAMPLE_SQS_BODY);
        assert_eq!(
            e["Records"][0]["eventSourceARN"],
            "arn:aws:sqs:local:000000000000:sample-queue"
        );
        let e = sample(
            &parse(&["sqs", "--body", "a", "--body", "b", "--queue", "jobs"]),
            now(),
        );
        let bodies: Vec<&str> = e["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["body"].as_str().unwrap())
            .collect();
        assert_eq!(bodies, ["a", "b"]);
        assert_eq!(
            e["Records"][1]["eventSourceARN"],
            "arn:aws:sqs:local:000000000000:jobs"
        );

        let e = sample(
            &parse(&[
                "kinesis",
                "--data",
                "hello",
                "--partition-key",
                "k1",
                "--stream",
                "orders",
            ]),
            now(),
        );
        let r = &e["Records"][0];
        assert_eq!(r["kinesis"]["data"], "aGVsbG8=");
        assert_eq!(r["kinesis"]["partitionKey"], "k1");
        assert_eq!(
            r["eventSourceARN"],
            "arn:aws:kinesis:local:000000000000:stream/orders"
        );
        let e = sample(&parse(&["kinesis"]), now());
        assert_eq!(e["Records"].as_array().unwrap().len(), 1);
        assert_eq!(e["Records"][0]["kinesis"]["partitionKey"], "partition-1");
    }

    #[test]
    fn prints_pretty_json() {
        let mut out = Vec::new();
        print(&parse(&["schedule"]), now(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("{\n  \""), "{text}");
        assert!(text.contains("\n  \"detail-type\": \"Scheduled Event\",\n"));
        assert!(text.ends_with("}\n"));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["source"], "aws.events");
    }
}
