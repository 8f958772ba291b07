mod common;

// The `hotswap` client CLI end to end: the real binary, run as a process,
// against a real server started by the harness. Results are checked through
// `--output json` (parsed) and the exit codes: 0 success, 1 refused by the
// server or unreachable, 2 bad usage found before any request.

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{json, Value};

/// Runs `hotswap ARGS` with HOTSWAP_URL = `url` and, when given,
/// HOTSWAP_TOKEN = `token`; nothing else from the environment leaks in.
fn hotswap(url: &str, token: Option<&str>, args: &[&str]) -> Run {
    Run::from_output(
        cli_command(url, token, args)
            .output()
            .expect("run the hotswap binary"),
    )
}

/// A CLI user: the server's URL and a token.
struct Cli {
    url: String,
    token: Option<String>,
}

impl Cli {
    fn new(s: &Server, token: &str) -> Cli {
        Cli {
            url: s.url.clone(),
            token: Some(token.to_owned()),
        }
    }

    fn admin(s: &Server) -> Cli {
        Cli::new(s, ADMIN_TOKEN)
    }

    fn run(&self, args: &[&str]) -> Run {
        hotswap(&self.url, self.token.as_deref(), args)
    }

    /// Runs and asserts exit 0.
    fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, 0, "hotswap {args:?} failed: {r:?}");
        r
    }

    /// Runs with `-o json`, asserts exit 0 and an empty stderr, and parses
    /// stdout.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let r = self.ok(&all);
        assert_eq!(r.stderr, "", "hotswap {all:?}: {r:?}");
        r.json()
    }

    /// Runs and asserts exit `code`; returns the run for the stderr checks.
    fn fails(&self, code: i32, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, code, "hotswap {args:?}: {r:?}");
        assert_eq!(r.stdout, "", "errors print nothing on stdout: {r:?}");
        assert!(r.stderr.starts_with("error: "), "{r:?}");
        r
    }
}

/// A directory `parent/name` holding the given files.
fn code_dir(parent: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, body) in files {
        std::fs::write(dir.join(file), body).unwrap();
    }
    dir
}

fn python_dir(parent: &Path, name: &str, reply: &str) -> PathBuf {
    code_dir(
        parent,
        name,
        &[(
            "app.py",
            &format!("def handler(event, context):\n    return {reply:?}\n"),
        )],
    )
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn names(list: &Value) -> Vec<&str> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {list}"))
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect()
}

fn item_count(list: &Value) -> usize {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {list}"))
        .len()
}

/// Items 1–3 of the brief: create (default name and --name), get, list
/// (JSON and table), publish, update-code, versions, aliases with weights,
/// and version deletes guarded by aliases.
#[test]
fn functions_versions_and_aliases() {
    let data = tempfile::tempdir().unwrap();
    let s = Server::start(data.path());
    let cli = Cli::admin(&s);
    let work = tempfile::tempdir().unwrap();
    let dir = python_dir(work.path(), "hello-cli", "one");
    let dir = path_str(&dir);

    // create: the name defaults to the directory's name
    let f = cli.json(&[
        "fn",
        "create",
        dir,
        "--runtime",
        "python311",
        "--handler",
        "app.handler",
        "--memory",
        "512",
        "--env",
        "A=1",
        "--tag",
        "team=x",
    ]);
    assert_eq!(f["name"], "hello-cli");
    assert_eq!(f["runtime"], "Python311");
    assert_eq!(f["handler"], "app.handler");
    assert_eq!(f["ownerId"], "admin");

    // create with --name, table output
    let r = cli.ok(&[
        "fn",
        "create",
        dir,
        "--name",
        "named-fn",
        "--runtime",
        "PYTHON311",
        "--handler",
        "app.handler",
    ]);
    assert!(r.stdout.starts_with("name"), "{r:?}");
    assert!(r.stdout.contains("named-fn"), "{r:?}");
    assert_eq!(cli.json(&["fn", "get", "named-fn"])["memorySize"], 256);

    // the same name again is refused by the server
    let r = cli.fails(
        1,
        &[
            "fn",
            "create",
            dir,
            "--runtime",
            "python311",
            "--handler",
            "app.handler",
        ],
    );
    assert!(r.stderr.contains("Conflict"), "{r:?}");

    // get
    let f = cli.json(&["fn", "get", "hello-cli"]);
    assert_eq!(f["name"], "hello-cli");
    assert_eq!(f["memorySize"], 512);
    assert_eq!(f["environment"], json!({ "A": "1" }));
    assert_eq!(f["tags"], json!({ "team": "x" }));
    assert!(f["publishedVersion"].is_null(), "{f}");

    // list, JSON and table
    let list = cli.json(&["fn", "list"]);
    let mut listed = names(&list);
    listed.sort_unstable();
    assert_eq!(listed, vec!["hello-cli", "named-fn"]);
    let only_tagged = cli.json(&["fn", "list", "--tag", "team=x"]);
    assert_eq!(names(&only_tagged), vec!["hello-cli"]);
    let table = cli.ok(&["fn", "list"]).stdout;
    assert!(table.starts_with("NAME"), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("hello-cli "))
        .unwrap_or_else(|| panic!("no hello-cli row in\n{table}"));
    assert!(row.contains("Python311"), "{row}");
    assert!(row.contains("512MB"), "{row}");

    // publish v1
    let v1 = cli.json(&["fn", "publish", "hello-cli", "--description", "first"]);
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["versionString"], "v1");
    assert_eq!(v1["description"], "first");
    assert_eq!(v1["memorySize"], 512);
    let sha1 = v1["codeSha256"].as_str().unwrap().to_owned();
    assert_eq!(sha1.len(), 64);

    // new code, publish v2
    let dir2 = python_dir(work.path(), "hello-cli-2", "two");
    let latest = cli.json(&["fn", "update-code", "hello-cli", path_str(&dir2)]);
    assert_eq!(latest["versionString"], "$LATEST");
    let sha2 = latest["codeSha256"].as_str().unwrap().to_owned();
    assert_ne!(sha2, sha1, "new code, new hash");
    let v2 = cli.json(&["fn", "publish", "hello-cli"]);
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["codeSha256"], sha2.as_str());
    assert_eq!(
        cli.json(&["fn", "get", "hello-cli"])["publishedVersion"],
        "v2"
    );
    assert_eq!(
        cli.json(&["version", "get", "hello-cli", "v1"])["codeSha256"],
        sha1.as_str(),
        "v1 keeps its code"
    );

    // versions: $LATEST first
    let versions = cli.json(&["fn", "versions", "hello-cli"]);
    let strings: Vec<&str> = versions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["versionString"].as_str().unwrap())
        .collect();
    assert_eq!(strings, vec!["$LATEST", "v1", "v2"]);
    let numbers: Vec<u64> = versions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![0, 1, 2]);

    // alias at v1, then weighted 90/10
    let a = cli.json(&["alias", "create", "hello-cli", "prod", "--version", "1"]);
    assert_eq!(a["aliasName"], "prod");
    assert_eq!(a["version"], 1);
    assert_eq!(a["routingConfig"], json!({}));
    let a = cli.json(&[
        "alias",
        "update",
        "hello-cli",
        "prod",
        "--version",
        "1",
        "--weight",
        "1=90",
        "--weight",
        "2=10",
    ]);
    assert_eq!(a["version"], 1);
    let routing = a["routingConfig"]
        .as_object()
        .expect("routingConfig object");
    assert_eq!(routing.len(), 2, "{a}");
    assert_eq!(routing["1"].as_f64(), Some(90.0), "{a}");
    assert_eq!(routing["2"].as_f64(), Some(10.0), "{a}");
    let table = cli.ok(&["alias", "list", "hello-cli"]).stdout;
    assert!(table.contains("v1=90%, v2=10%"), "{table}");

    // move to v2: the weights go
    let a = cli.json(&["alias", "update", "hello-cli", "prod", "--version", "2"]);
    assert_eq!(a["version"], 2);
    assert_eq!(a["routingConfig"], json!({}));
    assert_eq!(
        cli.json(&["alias", "get", "hello-cli", "prod"])["version"],
        2
    );

    // v2 is aliased: refused, naming the alias; v1 is free: deleted
    let r = cli.fails(1, &["version", "delete", "hello-cli", "2"]);
    assert!(r.stderr.contains("Conflict"), "{r:?}");
    assert!(r.stderr.contains("prod"), "{r:?}");
    let r = cli.ok(&["version", "delete", "hello-cli", "1"]);
    assert_eq!(r.stdout, "Deleted version 1 of 'hello-cli'.\n");
    let r = cli.fails(1, &["version", "get", "hello-cli", "1"]);
    assert!(r.stderr.contains("NotFound"), "{r:?}");
    let versions = cli.json(&["fn", "versions", "hello-cli"]);
    assert_eq!(item_count(&versions), 2, "{versions}");

    // delete a function
    let r = cli.ok(&["fn", "delete", "named-fn"]);
    assert_eq!(r.stdout, "Deleted function 'named-fn'.\n");
    let r = cli.fails(1, &["fn", "get", "named-fn"]);
    assert!(r.stderr.contains("NotFound"), "{r:?}");
}

/// Item 4: a directory with an executable `bootstrap` is zipped with its
/// executable bit, so a Provided function can be created from it.
#[cfg(unix)]
#[test]
fn provided_function_from_a_directory_with_an_executable_bootstrap() {
    use std::os::unix::fs::PermissionsExt;

    let data = tempfile::tempdir().unwrap();
    let s = Server::start(data.path());
    let cli = Cli::admin(&s);
    let work = tempfile::tempdir().unwrap();

    // Without a bootstrap the server refuses a Provided function.
    let no_boot = code_dir(work.path(), "no-boot", &[("main.sh", "echo hi\n")]);
    let r = cli.fails(
        1,
        &[
            "fn",
            "create",
            path_str(&no_boot),
            "--runtime",
            "provided",
            "--handler",
            "bootstrap",
        ],
    );
    assert!(r.stderr.contains("bootstrap"), "{r:?}");

    let dir = code_dir(
        work.path(),
        "native-fn",
        &[
            ("bootstrap", "#!/bin/sh\nexec ./handler\n"),
            ("data.txt", "not executable\n"),
        ],
    );
    let boot = dir.join("bootstrap");
    std::fs::set_permissions(&boot, std::fs::Permissions::from_mode(0o750)).unwrap();
    let f = cli.json(&[
        "fn",
        "create",
        path_str(&dir),
        "--runtime",
        "provided",
        "--handler",
        "bootstrap",
    ]);
    assert_eq!(f["name"], "native-fn");
    assert_eq!(f["runtime"], "Provided");

    // The package the server stored keeps the modes: 0755 for the
    // executable bootstrap, 0644 for the rest.
    let id = f["functionId"].as_str().unwrap();
    let zips = zip_files_under(&data.path().join(format!("blobs/functions/{id}")));
    assert_eq!(zips.len(), 1, "one stored package: {zips:?}");
    let bytes = std::fs::read(&zips[0]).unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mode = |archive: &mut zip::ZipArchive<_>, name: &str| {
        archive
            .by_name(name)
            .unwrap()
            .unix_mode()
            .expect("unix mode recorded")
            & 0o777
    };
    assert_eq!(mode(&mut archive, "bootstrap"), 0o755);
    assert_eq!(mode(&mut archive, "data.txt"), 0o644);

    let latest = cli.json(&["version", "get", "native-fn", "latest"]);
    assert_eq!(
        latest["codeSize"].as_u64(),
        Some(std::fs::metadata(&zips[0]).unwrap().len())
    );
}

fn zip_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            found.extend(zip_files_under(&p));
        } else if p.extension().is_some_and(|x| x == "zip") {
            found.push(p);
        }
    }
    found
}

/// Item 5: an HTTP trigger created, disabled, enabled, listed and deleted.
#[test]
fn http_trigger_lifecycle() {
    let data = tempfile::tempdir().unwrap();
    let s = Server::start(data.path());
    let cli = Cli::admin(&s);
    let work = tempfile::tempdir().unwrap();
    let dir = python_dir(work.path(), "hooked", "hi");
    cli.ok(&[
        "fn",
        "create",
        path_str(&dir),
        "--runtime",
        "python311",
        "--handler",
        "app.handler",
    ]);

    let t = cli.json(&[
        "trigger", "create", "hooked", "--type", "http", "--path", "/hook", "--method", "post",
    ]);
    assert_eq!(t["type"], "Http");
    assert_eq!(t["functionName"], "hooked");
    assert_eq!(t["isEnabled"], true);
    assert_eq!(t["targetVersion"], "$LATEST");
    assert_eq!(t["config"]["httpPath"], "/hook");
    assert_eq!(t["config"]["httpMethods"], json!(["POST"]));
    let id = t["triggerId"].as_str().expect("triggerId").to_owned();

    // the same route again is a conflict
    let r = cli.fails(
        1,
        &[
            "trigger", "create", "hooked", "--type", "http", "--path", "/hook", "--method", "POST",
        ],
    );
    assert!(r.stderr.contains("Conflict"), "{r:?}");

    let t = cli.json(&["trigger", "disable", &id]);
    assert_eq!(t["isEnabled"], false);
    assert_eq!(cli.json(&["trigger", "get", &id])["isEnabled"], false);
    let t = cli.json(&["trigger", "enable", &id]);
    assert_eq!(t["isEnabled"], true);
    cli.json(&["trigger", "disable", &id]);

    let list = cli.json(&["trigger", "list", "--function", "hooked"]);
    assert_eq!(item_count(&list), 1, "{list}");
    assert_eq!(list["items"][0]["triggerId"], id.as_str());
    assert_eq!(list["items"][0]["isEnabled"], false);
    let table = cli.ok(&["trigger", "list", "--function", "hooked"]).stdout;
    assert!(table.contains("POST /hook"), "{table}");

    let r = cli.ok(&["trigger", "delete", &id]);
    assert_eq!(r.stdout, format!("Deleted trigger {id}.\n"));
    let r = cli.fails(1, &["trigger", "get", &id]);
    assert!(r.stderr.contains("NotFound"), "{r:?}");
    let list = cli.json(&["trigger", "list", "--function", "hooked"]);
    assert_eq!(item_count(&list), 0, "{list}");
    let r = cli.ok(&["trigger", "list", "--function", "hooked"]);
    assert_eq!(r.stdout, "No triggers found.\n");
}

/// Item 6: a canary deployment recorded, a second one on the same alias
/// refused, the first cancelled.
#[test]
fn canary_deploy_conflict_and_cancel() {
    let data = tempfile::tempdir().unwrap();
    let s = Server::start(data.path());
    let cli = Cli::admin(&s);
    let work = tempfile::tempdir().unwrap();
    let dir = python_dir(work.path(), "deployed", "one");
    cli.ok(&[
        "fn",
        "create",
        path_str(&dir),
        "--runtime",
        "python311",
        "--handler",
        "app.handler",
    ]);
    assert_eq!(cli.json(&["fn", "publish", "deployed"])["version"], 1);
    assert_eq!(cli.json(&["fn", "publish", "deployed"])["version"], 2);
    cli.json(&["alias", "create", "deployed", "prod", "--version", "2"]);

    let d = cli.json(&[
        "deploy",
        "deployed",
        "--alias",
        "prod",
        "--version",
        "1",
        "--strategy",
        "canary",
        "--canary-percent",
        "10",
        "--canary-duration",
        "5m",
        "--no-wait",
    ]);
    assert_eq!(d["status"], "Pending");
    assert_eq!(d["strategy"], "Canary");
    assert_eq!(d["aliasName"], "prod");
    assert_eq!(d["sourceVersion"], 2);
    assert_eq!(d["targetVersion"], 1);
    assert_eq!(d["deployedBy"], "admin");
    assert_eq!(d["config"]["canaryDuration"].as_f64(), Some(300.0), "{d}");
    assert_eq!(d["config"]["canaryPercentage"].as_f64(), Some(10.0), "{d}");
    let id = d["deploymentId"].as_str().expect("deploymentId").to_owned();

    // one active deployment per alias
    let r = cli.fails(
        1,
        &[
            "deploy",
            "deployed",
            "--alias",
            "prod",
            "--version",
            "1",
            "--no-wait",
        ],
    );
    assert!(r.stderr.contains("Conflict"), "{r:?}");

    let list = cli.json(&["deployments", "list", "deployed"]);
    assert_eq!(item_count(&list), 1, "{list}");
    assert_eq!(list["items"][0]["deploymentId"], id.as_str());
    let got = cli.json(&["deployments", "get", "deployed", &id]);
    assert!(
        got["status"] == "Pending" || got["status"] == "InProgress",
        "{got}"
    );

    let c = cli.json(&[
        "deployments",
        "cancel",
        "deployed",
        &id,
        "--reason",
        "changed my mind",
    ]);
    assert_eq!(c["status"], "Cancelled");
    assert!(c["completedAt"].is_string(), "{c}");
    // Cancelling puts all traffic back on the source version.
    let prod = cli.json(&["alias", "get", "deployed", "prod"]);
    assert_eq!(
        (prod["version"].clone(), prod["routingConfig"].clone()),
        (json!(2), json!({})),
        "{prod}"
    );
    assert_eq!(
        cli.json(&["deployments", "get", "deployed", &id])["status"],
        "Cancelled"
    );
    // a finished deployment cannot be cancelled again
    let r = cli.fails(1, &["deployments", "cancel", "deployed", &id]);
    assert!(r.stderr.contains("Conflict"), "{r:?}");
}

/// Item 7: usage errors (exit 2, no request), server refusals (exit 1 with
/// the API's error and field errors on stderr), auth and reachability.
#[test]
fn errors_and_exit_codes() {
    let data = tempfile::tempdir().unwrap();
    let s = Server::start(data.path());
    let cli = Cli::admin(&s);
    let work = tempfile::tempdir().unwrap();
    let dir = python_dir(work.path(), "secret-fn", "mine");
    let dir = path_str(&dir);
    cli.ok(&[
        "fn",
        "create",
        dir,
        "--runtime",
        "python311",
        "--handler",
        "app.handler",
    ]);

    // An unknown runtime is a usage error: exit 2 even with nothing
    // listening, so no request was sent.
    let nowhere = Cli {
        url: "http://127.0.0.1:1".into(),
        token: Some(ADMIN_TOKEN.into()),
    };
    let r = nowhere.fails(
        2,
        &[
            "fn",
            "create",
            dir,
            "--name",
            "cobol-fn",
            "--runtime",
            "cobol",
            "--handler",
            "app.handler",
        ],
    );
    assert!(r.stderr.contains("cobol"), "{r:?}");
    assert!(r.stderr.contains("--runtime"), "{r:?}");

    // A missing directory: exit 2, also without a request.
    let missing = work.path().join("no-such-dir");
    let create_missing = [
        "fn",
        "create",
        path_str(&missing),
        "--name",
        "ghost",
        "--runtime",
        "python311",
        "--handler",
        "app.handler",
    ];
    let r = nowhere.fails(2, &create_missing);
    assert!(r.stderr.contains("cannot read"), "{r:?}");
    assert!(r.stderr.contains("no such file or directory"), "{r:?}");
    let r = cli.fails(2, &create_missing);
    assert!(r.stderr.contains("no-such-dir"), "{r:?}");
    assert!(cli
        .fails(1, &["fn", "get", "ghost"])
        .stderr
        .contains("NotFound"));

    // A validation error from the server: exit 1, each field error listed.
    let r = cli.fails(
        1,
        &[
            "fn",
            "create",
            dir,
            "--name",
            "tiny",
            "--runtime",
            "python311",
            "--handler",
            "app.handler",
            "--memory",
            "100",
        ],
    );
    assert!(r.stderr.contains("ValidationFailed"), "{r:?}");
    assert!(
        r.stderr
            .lines()
            .any(|l| l == "  - MemorySize must be 128-10240 MB in 64 MB increments"),
        "{r:?}"
    );
    let r = cli.fails(1, &["fn", "update", "secret-fn", "--timeout", "901"]);
    assert!(
        r.stderr
            .lines()
            .any(|l| l == "  - Timeout must be 1-900 seconds"),
        "{r:?}"
    );

    // No token: Unauthorized, with a hint.
    let anonymous = Cli {
        url: s.url.clone(),
        token: None,
    };
    let r = anonymous.fails(1, &["fn", "list"]);
    assert!(r.stderr.contains("Unauthorized"), "{r:?}");
    assert!(r.stderr.contains("HOTSWAP_TOKEN"), "{r:?}");
    // A wrong token: Unauthorized too.
    let r = Cli::new(&s, "not-a-real-token-0123456789").fails(1, &["whoami"]);
    assert!(r.stderr.contains("Unauthorized"), "{r:?}");

    // --url beats HOTSWAP_URL: nothing listens there.
    let r = cli.fails(1, &["--url", "http://127.0.0.1:1", "fn", "list"]);
    assert!(
        r.stderr
            .contains("cannot reach HotSwap at http://127.0.0.1:1"),
        "{r:?}"
    );
    // A malformed URL is a usage error.
    let r = cli.fails(2, &["--url", "127.0.0.1:8080", "whoami"]);
    assert!(r.stderr.contains("invalid --url"), "{r:?}");

    // A non-admin token cannot see the admin's function.
    let t = cli.json(&["token", "create", "bob"]);
    assert_eq!(t["ownerId"], "bob");
    let bob_token = t["token"].as_str().expect("token").to_owned();
    let bob = Cli::new(&s, &bob_token);
    let me = bob.json(&["whoami"]);
    assert_eq!(me["ownerId"], "bob");
    assert_eq!(me["admin"], false);
    let r = bob.fails(1, &["fn", "get", "secret-fn"]);
    assert!(r.stderr.contains("NotFound"), "{r:?}");
    assert_eq!(item_count(&bob.json(&["fn", "list"])), 0);
    // --token beats HOTSWAP_TOKEN.
    let r = cli.fails(1, &["--token", &bob_token, "fn", "get", "secret-fn"]);
    assert!(r.stderr.contains("NotFound"), "{r:?}");
    // and a non-admin cannot mint tokens
    let r = bob.fails(1, &["token", "create", "mallory"]);
    assert!(r.stderr.contains("Forbidden"), "{r:?}");
    // the admin still sees it
    assert_eq!(cli.json(&["fn", "get", "secret-fn"])["ownerId"], "admin");
}

/// Item 8: help needs no server.
#[test]
fn help_texts() {
    let nowhere = "http://127.0.0.1:1";
    let r = hotswap(nowhere, None, &["--help"]);
    assert_eq!(r.code, 0, "{r:?}");
    for word in ["server", "fn", "alias", "deploy", "--url", "--token"] {
        assert!(r.stdout.contains(word), "{word} missing: {}", r.stdout);
    }
    let r = hotswap(nowhere, None, &["fn", "--help"]);
    assert_eq!(r.code, 0, "{r:?}");
    for word in ["create", "update-code", "publish", "versions"] {
        assert!(r.stdout.contains(word), "{word} missing: {}", r.stdout);
    }
    let r = hotswap(nowhere, None, &["fn", "create", "--help"]);
    assert_eq!(r.code, 0, "{r:?}");
    for word in ["--runtime", "--handler", "--memory", "bootstrap"] {
        assert!(r.stdout.contains(word), "{word} missing: {}", r.stdout);
    }
    // A missing subcommand is a usage error.
    let r = hotswap(nowhere, None, &["fn"]);
    assert_eq!(r.code, 2, "{r:?}");
}
