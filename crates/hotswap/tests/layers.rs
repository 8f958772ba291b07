//! Layers end to end: uploaded through the API, attached by name, unpacked
//! in order read-only at /opt, pinned when a version is published.

mod common;

use common::*;
use serde_json::{json, Value};

fn publish_layer(s: &Server, name: &str, files: &[(&str, &str)]) -> Value {
    let (st, l) = s.admin(
        "POST",
        "/v1/layers",
        Some(json!({ "layerName": name, "content": { "zipFile": b64(&zip_of(files)) } })),
    );
    assert_eq!(st, 201, "{l}");
    l
}

fn invoke(s: &Server, path: &str) -> Value {
    let (st, r) = s.admin("POST", path, Some(json!({})));
    assert_eq!(st, 200, "{r}");
    r
}

#[test]
fn layers_are_unpacked_in_order_at_opt_and_pinned_at_publish() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        ServerOptions {
            extra_args: vec!["--sandbox".into(), "isolated".into()],
            ..Default::default()
        },
    );
    let base = publish_layer(
        &s,
        "base",
        &[
            ("python/helper.py", "WHO = 'base v1'\n"),
            ("python/which.py", "WHO = 'base'\n"),
            ("data/info.txt", "from base"),
        ],
    );
    assert_eq!(
        (
            base["version"].as_u64(),
            base["codeLocation"]
                .as_str()
                .map(|l| l.starts_with("layers/base/"))
        ),
        (Some(1), Some(true))
    );
    publish_layer(&s, "override", &[("python/which.py", "WHO = 'override'\n")]);
    publish_layer(
        &s,
        "js",
        &[(
            "nodejs/node_modules/greet/index.js",
            "module.exports = (n) => 'hi ' + n;\n",
        )],
    );

    let py = r#"
import helper, which
def handler(event, context):
    try:
        open("/opt/new.txt", "w")
        writable = True
    except OSError:
        writable = False
    return {"helper": helper.WHO, "which": which.WHO, "info": open("/opt/data/info.txt").read(), "opt_writable": writable}
"#;
    let (st, f) = s.admin(
        "POST",
        "/v1/functions",
        Some(
            json!({ "name": "uses-layers", "runtime": "Python311", "handler": "app.handler",
        "layers": ["base", "override"], "code": { "zipFile": b64(&zip_of(&[("app.py", py)])) } }),
        ),
    );
    assert_eq!(st, 201, "{f}");
    let r = invoke(&s, "/v1/functions/uses-layers/invoke?result=full");
    assert_eq!(r["success"], true, "{r}");
    let out: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        out,
        json!({ "helper": "base v1", "which": "override", "info": "from base", "opt_writable": false }),
        "later layers win; /opt is read-only"
    );

    // publishing pins the layers; a newer layer version reaches $LATEST only
    let (_, v1) = s.admin("POST", "/v1/functions/uses-layers/versions", None);
    assert_eq!(v1["layers"], json!(["base:1", "override:1"]));
    publish_layer(
        &s,
        "base",
        &[
            ("python/helper.py", "WHO = 'base v2'\n"),
            ("python/which.py", "WHO = 'base'\n"),
            ("data/info.txt", "from base"),
        ],
    );
    let pinned = invoke(
        &s,
        "/v1/functions/uses-layers/invoke?qualifier=1&result=full",
    );
    assert_eq!(
        serde_json::from_str::<Value>(pinned["body"].as_str().unwrap()).unwrap()["helper"],
        "base v1"
    );
    let latest = invoke(&s, "/v1/functions/uses-layers/invoke?result=full");
    assert_eq!(
        serde_json::from_str::<Value>(latest["body"].as_str().unwrap()).unwrap()["helper"],
        "base v2"
    );

    // Node resolves packages from /opt/nodejs/node_modules
    let js = "const greet = require('greet');\nexports.handler = async () => greet('layer');\n";
    let (st, _) = s.admin(
        "POST",
        "/v1/functions",
        Some(
            json!({ "name": "node-layer", "runtime": "Node20", "handler": "index.handler",
        "layers": ["js:1"], "code": { "zipFile": b64(&zip_of(&[("index.js", js)])) } }),
        ),
    );
    assert_eq!(st, 201);
    let r = invoke(&s, "/v1/functions/node-layer/invoke?result=full");
    assert_eq!(r["body"], "\"hi layer\"", "{r}");

    // references are checked; layers in use cannot be deleted
    let (st, b) = s.admin(
        "PATCH",
        "/v1/functions/uses-layers",
        Some(json!({ "layers": ["nope"] })),
    );
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["errors"], json!(["Layer 'nope' does not exist"]));
    let (st, b) = s.admin("DELETE", "/v1/layers/base/versions/1", None);
    assert_eq!(st, 409, "v1 of the function pins base:1: {b}");
    let bob = s.token_for("bob");
    let (st, _) = s.call(
        "POST",
        "/v1/layers",
        Some(&bob),
        Some(json!({ "layerName": "base", "content": { "zipFile": b64(&zip_of(&[("x", "y")])) } })),
    );
    assert_eq!(st, 409, "the name belongs to its first publisher");
    let (st, b) = s.call(
        "POST",
        "/v1/functions",
        Some(&bob),
        Some(
            json!({ "name": "bobs", "runtime": "Python311", "handler": "app.handler",
        "layers": ["base"], "code": { "zipFile": b64(&zip_of(&[("app.py", "x")])) } }),
        ),
    );
    assert_eq!(st, 400, "bob cannot use alice's layer: {b}");
    let (_, list) = s.admin("GET", "/v1/layers", None);
    let names: Vec<(&str, u64)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["layerName"].as_str().unwrap(),
                l["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(names, vec![("base", 2), ("js", 1), ("override", 1)]);
    assert_eq!(
        s.call("GET", "/v1/layers", Some(&bob), None).1["items"],
        json!([])
    );
}

#[test]
fn a_deleted_layer_versions_number_is_never_published_again() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    for n in 1..=2 {
        let l = publish_layer(&s, "counted", &[("n.txt", &n.to_string())]);
        assert_eq!(l["version"], n);
    }
    let (st, b) = s.admin("DELETE", "/v1/layers/counted/versions/2", None);
    assert_eq!(st, 204, "{b}");
    let l = publish_layer(&s, "counted", &[("n.txt", "other content")]);
    assert_eq!(l["version"], 3, "2 named other content once: {l}");
    let (st, b) = s.admin("GET", "/v1/layers/counted/versions/2", None);
    assert_eq!((st, b["code"].as_str()), (404, Some("NotFound")), "{b}");
}
