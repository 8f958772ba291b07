//! Ruby functions on the runner's interpreter through the built-in bootstrap
//! (`crates/runner/runtimes/ruby/bootstrap.rb`), in the isolated sandbox:
//! echo, warm reuse, context and environment, exceptions, init errors, a
//! layer under /opt/ruby/lib, and the timeout.

mod common;

use std::time::Instant;

use common::*;
use serde_json::{json, Value};

const APP: &str = r#"
$calls = 0

def lambda_handler(event:, context:)
  $calls += 1
  raise ArgumentError, "asked to fail: #{event['fail']}" if event.is_a?(Hash) && event["fail"]

  puts "ruby handling #{context.aws_request_id}"
  {
    "event" => event,
    "calls" => $calls,
    "function_name" => context.function_name,
    "function_version" => context.function_version,
    "memory_limit_in_mb" => context.memory_limit_in_mb,
    "aws_request_id" => context.aws_request_id,
    "log_group_name" => context.log_group_name,
    "log_stream_name" => context.log_stream_name,
    "invoked_function_arn" => context.invoked_function_arn,
    "remaining_ms" => context.get_remaining_time_in_millis,
    "greeting" => ENV["GREETING"],
    "handler" => ENV["_HANDLER"],
    "exec_env" => ENV["AWS_EXECUTION_ENV"],
    "task_root" => ENV["LAMBDA_TASK_ROOT"],
    "uid" => Process.uid
  }
end

def with_layer(event:, context:)
  require "shared_greeting"
  { "greeting" => SharedGreeting.greet(event["name"]), "rubylib" => ENV["RUBYLIB"] }
end

def slow(event:, context:)
  sleep 5
  "late"
end
"#;

fn isolated(dir: &std::path::Path) -> Server {
    Server::start_with(
        dir,
        ServerOptions {
            extra_args: vec!["--sandbox".into(), "isolated".into()],
            ..Default::default()
        },
    )
}

fn create(s: &Server, name: &str, handler: &str, extra: Value) {
    let mut body = json!({ "name": name, "runtime": "Ruby31", "handler": handler,
        "code": { "zipFile": b64(&zip_of(&[("lambda_function.rb", APP)])) } });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (st, f) = s.admin("POST", "/v1/functions", Some(body));
    assert_eq!(st, 201, "{f}");
}

fn invoke_full(s: &Server, name: &str, event: Value) -> Value {
    let (st, r) = s.admin(
        "POST",
        &format!("/v1/functions/{name}/invoke?result=full"),
        Some(event),
    );
    assert_eq!(st, 200, "{r}");
    r
}

fn publish_layer(s: &Server, name: &str, files: &[(&str, &str)]) {
    let (st, l) = s.admin(
        "POST",
        "/v1/layers",
        Some(json!({ "layerName": name, "content": { "zipFile": b64(&zip_of(files)) } })),
    );
    assert_eq!(st, 201, "{l}");
}

const LAYER: &[(&str, &str)] = &[(
    "ruby/lib/shared_greeting.rb",
    "module SharedGreeting\n  def self.greet(name) = \"hello #{name} from a layer\"\nend\n",
)];

const GEMSPEC: &str = r#"Gem::Specification.new do |s|
  s.name = "greeter"
  s.version = "1.2.0"
  s.summary = "a vendored gem"
  s.authors = ["hotswap"]
  s.files = ["lib/greeter.rb"]
  s.require_paths = ["lib"]
end
"#;

#[test]
fn a_ruby_handler_runs_warm_with_its_context_and_reports_exceptions() {
    let dir = tempfile::tempdir().unwrap();
    let s = isolated(dir.path());
    let (_, local) = s.admin("GET", "/v1/runners/local", None);
    assert!(
        local["sandbox"].as_str().unwrap().starts_with("isolated"),
        "{local}"
    );
    let runtimes = local["runtimes"].as_array().unwrap();
    for r in ["Ruby30", "Ruby31", "Go121"] {
        assert!(runtimes.contains(&json!(r)), "{r}: {local}");
    }

    create(
        &s,
        "rb-hello",
        "lambda_function.lambda_handler",
        json!({ "memorySize": 256, "environment": { "GREETING": "hej" } }),
    );
    for calls in 1..=2 {
        let r = invoke_full(&s, "rb-hello", json!({ "n": calls, "s": "h\u{e9}llo" }));
        assert_eq!(r["success"], true, "{r}");
        assert_eq!(r["wasColdStart"], calls == 1, "{r}");
        let out: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        let remaining = out["remaining_ms"].as_u64().unwrap();
        assert!((1..=30_000).contains(&remaining), "{out}");
        assert_eq!(
            out,
            json!({
                "event": { "n": calls, "s": "h\u{e9}llo" },
                "calls": calls,
                "function_name": "rb-hello",
                "function_version": "$LATEST",
                "memory_limit_in_mb": "256",
                "aws_request_id": r["requestId"],
                "log_group_name": "/aws/lambda/rb-hello",
                "log_stream_name": r["logStreamName"],
                "invoked_function_arn": "arn:aws:lambda:local:000000000000:function:rb-hello:$LATEST",
                "remaining_ms": remaining,
                "greeting": "hej",
                "handler": "lambda_function.lambda_handler",
                "exec_env": "AWS_Lambda_ruby",
                "task_root": "/var/task",
                "uid": 65534
            })
        );
    }
    let (_, logs) = s.admin("GET", "/v1/functions/rb-hello/logs", None);
    assert!(
        logs["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"].as_str().unwrap().starts_with("ruby handling ")),
        "{logs}"
    );

    // A raised exception is the invocation's error, and the instance lives on.
    let (st, e) = s.admin(
        "POST",
        "/v1/functions/rb-hello/invoke",
        Some(json!({ "fail": "please" })),
    );
    assert_eq!(st, 200, "{e}");
    assert_eq!(e["errorType"], "ArgumentError", "{e}");
    assert_eq!(e["errorMessage"], "asked to fail: please");
    let trace = e["stackTrace"].as_array().unwrap();
    assert!(
        trace[0]
            .as_str()
            .unwrap()
            .starts_with("/var/task/lambda_function.rb:"),
        "{e}"
    );
    assert!(
        !trace
            .iter()
            .any(|f| f.as_str().unwrap().contains("bootstrap.rb")),
        "{e}"
    );
    let r = invoke_full(&s, "rb-hello", json!({ "fail": "again" }));
    assert_eq!(
        (
            r["success"].as_bool(),
            r["errorType"].as_str(),
            r["wasColdStart"].as_bool()
        ),
        (Some(false), Some("ArgumentError"), Some(false)),
        "{r}"
    );

    // A handler that does not exist fails the init.
    create(&s, "rb-missing", "lambda_function.nope", json!({}));
    let r = invoke_full(&s, "rb-missing", json!({}));
    assert_eq!(r["errorType"], "Runtime.HandlerNotFound", "{r}");

    // Layers: /opt/ruby/lib is on the load path and in RUBYLIB.
    publish_layer(&s, "rb-shared", LAYER);
    create(
        &s,
        "rb-layer",
        "lambda_function.with_layer",
        json!({ "layers": ["rb-shared"] }),
    );
    let r = invoke_full(&s, "rb-layer", json!({ "name": "ann" }));
    assert_eq!(r["success"], true, "{r}");
    let out: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(out["greeting"], "hello ann from a layer", "{out}");
    assert_eq!(out["rubylib"], "/var/task:/opt/ruby/lib", "{out}");

    // Gems bundled the AWS way (vendor/bundle/ruby/X.Y.0) load through RubyGems.
    let abi = String::from_utf8(
        std::process::Command::new("ruby")
            .args(["-rrbconfig", "-e", "print RbConfig::CONFIG['ruby_version']"])
            .output()
            .expect("ruby")
            .stdout,
    )
    .unwrap();
    assert!(abi.starts_with("3."), "ruby_version {abi:?}");
    let gems = format!("vendor/bundle/ruby/{abi}");
    let zip = zip_of(&[
        (&format!("{gems}/specifications/greeter-1.2.0.gemspec"), GEMSPEC),
        (
            &format!("{gems}/gems/greeter-1.2.0/lib/greeter.rb"),
            "module Greeter\n  def self.hi(n) = \"hi #{n}\"\nend\n",
        ),
        (
            "app.rb",
            "require 'greeter'\ndef handler(event:, context:) = { 'hi' => Greeter.hi(event['name']), \
             'version' => Gem.loaded_specs['greeter'].version.to_s, 'gem_path' => Gem.path.first }\n",
        ),
    ]);
    let (st, f) = s.admin(
        "POST",
        "/v1/functions",
        Some(
            json!({ "name": "rb-gems", "runtime": "Ruby31", "handler": "app.handler",
            "code": { "zipFile": b64(&zip) } }),
        ),
    );
    assert_eq!(st, 201, "{f}");
    let r = invoke_full(&s, "rb-gems", json!({ "name": "cy" }));
    assert_eq!(r["success"], true, "{r}");
    let out: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        out,
        json!({ "hi": "hi cy", "version": "1.2.0", "gem_path": format!("/var/task/{gems}") })
    );

    // The timeout kills the instance; the next invocation starts a new one.
    create(
        &s,
        "rb-slow",
        "lambda_function.slow",
        json!({ "timeout": 1 }),
    );
    let started = Instant::now();
    let r = invoke_full(&s, "rb-slow", json!({}));
    assert!(
        started.elapsed().as_secs_f64() < 4.0,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r["errorType"], "Sandbox.Timedout", "{r}");
    assert!(
        r["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Task timed out after 1 seconds"),
        "{r}"
    );
    let r = invoke_full(&s, "rb-slow", json!({}));
    assert_eq!(r["wasColdStart"], true, "{r}");
}

#[test]
fn a_ruby_layer_is_requirable_unisolated_too() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        ServerOptions {
            extra_args: vec!["--sandbox".into(), "unisolated".into()],
            ..Default::default()
        },
    );
    publish_layer(&s, "rb-shared", LAYER);
    create(
        &s,
        "rb-layer",
        "lambda_function.with_layer",
        json!({ "layers": ["rb-shared"] }),
    );
    let r = invoke_full(&s, "rb-layer", json!({ "name": "bo" }));
    assert_eq!(r["success"], true, "{r}");
    let out: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(out["greeting"], "hello bo from a layer", "{out}");
}
