//! The full lifecycle over HTTP against the real binary, on SQLite and on
//! PostgreSQL: create → update code → publish v1, v2 → alias at v1 →
//! weighted 90/10 → move to v2 → delete refused while aliased → allowed after.

mod common;

use common::*;
use serde_json::json;

fn lifecycle(s: &Server) {
    let alice = s.token_for("alice");
    let a = Some(alice.as_str());

    // create
    let (st, f) = s.call(
        "POST",
        "/v1/functions",
        a,
        Some(json!({
            "name": "image-processor",
            "runtime": "Python311",
            "handler": "app.handler",
            "memorySize": 512,
            "environment": { "STAGE": "test" },
            "tags": { "team": "media" },
            "code": { "zipFile": python_code("one") }
        })),
    );
    assert_eq!(st, 201, "{f}");
    assert_eq!(f["name"], "image-processor");
    assert_eq!(f["ownerId"], "alice");
    let function_id = f["functionId"].as_str().unwrap().to_owned();
    assert_eq!(f["memorySize"], 512);
    assert_eq!(f["timeout"], 30, "seed default");
    assert_eq!(f["scalingConfig"]["maxInstances"], 100, "seed default");
    assert_eq!(f["totalInvocations"], 0);
    assert!(f["publishedVersion"].is_null());

    let (st, again) = s.call(
        "POST",
        "/v1/functions",
        a,
        Some(function_body("image-processor")),
    );
    assert_eq!((st, again["code"].as_str()), (409, Some("Conflict")));

    // $LATEST exists with the code's hash
    let (st, latest) = s.call(
        "GET",
        "/v1/functions/image-processor/versions/$LATEST",
        a,
        None,
    );
    assert_eq!(st, 200, "{latest}");
    assert_eq!(latest["versionString"], "$LATEST");
    let first_sha = latest["codeSha256"].as_str().unwrap().to_owned();
    assert_eq!(first_sha.len(), 64);

    // publish v1
    let (st, v1) = s.call(
        "POST",
        "/v1/functions/image-processor/versions",
        a,
        Some(json!({ "description": "first" })),
    );
    assert_eq!(st, 201, "{v1}");
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["versionString"], "v1");
    assert_eq!(v1["codeSha256"], first_sha.as_str());
    assert_eq!(
        v1["codeLocation"],
        format!("functions/{function_id}/versions/1/code.zip").as_str()
    );
    assert_eq!(v1["createdBy"], "alice");
    assert_eq!(v1["status"], "Active");
    assert_eq!(v1["environment"]["STAGE"], "test");

    // update code and configuration, publish v2
    let (st, up) = s.call(
        "PUT",
        "/v1/functions/image-processor/code",
        a,
        Some(json!({ "zipFile": python_code("two") })),
    );
    assert_eq!(st, 200, "{up}");
    assert_ne!(up["codeSha256"], first_sha.as_str());
    let (st, f) = s.call(
        "PATCH",
        "/v1/functions/image-processor",
        a,
        Some(json!({ "timeout": 60, "description": "resizes" })),
    );
    assert_eq!(st, 200, "{f}");
    assert_eq!(
        (f["timeout"].as_u64(), f["description"].as_str()),
        (Some(60), Some("resizes"))
    );
    let (st, v2) = s.call("POST", "/v1/functions/image-processor/versions", a, None);
    assert_eq!(st, 201, "{v2}");
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["timeout"], 60);
    assert_eq!(v2["codeSha256"], up["codeSha256"]);

    // v1 is immutable: still the old code and timeout
    let (_, v1_again) = s.call("GET", "/v1/functions/image-processor/versions/1", a, None);
    assert_eq!(v1_again["codeSha256"], first_sha.as_str());
    assert_eq!(v1_again["timeout"], 30);
    let (_, f) = s.call("GET", "/v1/functions/image-processor", a, None);
    assert_eq!(f["publishedVersion"], "v2");
    let (_, list) = s.call("GET", "/v1/functions/image-processor/versions", a, None);
    let numbers: Vec<u64> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![0, 1, 2]);

    // alias at v1
    let (st, alias) = s.call(
        "POST",
        "/v1/functions/image-processor/aliases",
        a,
        Some(json!({ "aliasName": "prod", "version": 1 })),
    );
    assert_eq!(st, 201, "{alias}");
    assert_eq!(alias["version"], 1);
    assert_eq!(alias["routingConfig"], json!({}));

    // weighted 90/10
    let (st, alias) = s.call(
        "PUT",
        "/v1/functions/image-processor/aliases/prod",
        a,
        Some(json!({ "routingConfig": { "1": 90, "2": 10 } })),
    );
    assert_eq!(st, 200, "{alias}");
    assert_eq!(alias["routingConfig"], json!({ "1": 90.0, "2": 10.0 }));

    // v2 is routed to: deleting it is refused
    let (st, err) = s.call(
        "DELETE",
        "/v1/functions/image-processor/versions/2",
        a,
        None,
    );
    assert_eq!(st, 409, "{err}");
    assert_eq!(err["code"], "Conflict");
    assert!(err["message"].as_str().unwrap().contains("prod"), "{err}");

    // move to v2 (clears the weights)
    let (st, alias) = s.call(
        "PUT",
        "/v1/functions/image-processor/aliases/prod",
        a,
        Some(json!({ "version": 2 })),
    );
    assert_eq!(st, 200, "{alias}");
    assert_eq!(alias["version"], 2);
    assert_eq!(alias["routingConfig"], json!({}));

    // v2 is aliased: refused; v1 no longer is: allowed
    let (st, _) = s.call(
        "DELETE",
        "/v1/functions/image-processor/versions/2",
        a,
        None,
    );
    assert_eq!(st, 409);
    let (st, body) = s.call(
        "DELETE",
        "/v1/functions/image-processor/versions/1",
        a,
        None,
    );
    assert_eq!(st, 204, "{body}");
    let (st, _) = s.call("GET", "/v1/functions/image-processor/versions/1", a, None);
    assert_eq!(st, 404);

    // after the alias is gone, v2 can go too; numbers are not reused
    let (st, _) = s.call(
        "DELETE",
        "/v1/functions/image-processor/aliases/prod",
        a,
        None,
    );
    assert_eq!(st, 204);
    let (st, _) = s.call(
        "DELETE",
        "/v1/functions/image-processor/versions/2",
        a,
        None,
    );
    assert_eq!(st, 204);
    let (_, v3) = s.call("POST", "/v1/functions/image-processor/versions", a, None);
    assert_eq!(v3["version"], 3, "version numbers are never reused");

    // triggers, deployments and the function itself
    let (st, t) = s.call(
        "POST",
        "/v1/triggers",
        a,
        Some(json!({
            "functionName": "image-processor", "type": "Http",
            "config": { "httpPath": "/api/process", "httpMethods": ["POST"], "corsEnabled": true }
        })),
    );
    assert_eq!(st, 201, "{t}");
    let (st, list) = s.call("GET", "/v1/functions?tag=team=media", a, None);
    assert_eq!(st, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    let (st, _) = s.call("DELETE", "/v1/functions/image-processor", a, None);
    assert_eq!(st, 204);
    let (st, _) = s.call("GET", "/v1/functions/image-processor", a, None);
    assert_eq!(st, 404);
    let (st, _) = s.call(
        "GET",
        &format!("/v1/triggers/{}", t["triggerId"].as_str().unwrap()),
        a,
        None,
    );
    assert_eq!(st, 404, "triggers go with their function");
    let blobs = s.data_dir.join(format!("blobs/functions/{function_id}"));
    assert_eq!(files_under(&blobs), 0, "code packages deleted");
}

fn files_under(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                files_under(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn lifecycle_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    lifecycle(&s);
}

#[test]
fn lifecycle_on_postgres() {
    let db = PgDb::create();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        ServerOptions {
            database_url: Some(db.url.clone()),
            ..Default::default()
        },
    );
    lifecycle(&s);
}

#[test]
fn multipart_upload_and_raw_zip_code_update() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let zip = zip_of(&[("index.js", "exports.handler = async (e) => e;\n")]);
    let boundary = "XBOUNDARYX";
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\nContent-Type: application/json\r\n\r\n").as_bytes());
    body.extend_from_slice(br#"{"name":"mp","runtime":"Node20","handler":"index.handler"}"#);
    body.extend_from_slice(format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"code\"; filename=\"code.zip\"\r\nContent-Type: application/zip\r\n\r\n").as_bytes());
    body.extend_from_slice(&zip);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let (st, f) = s.raw(
        "POST",
        "/v1/functions",
        Some(ADMIN_TOKEN),
        &format!("multipart/form-data; boundary={boundary}"),
        body,
    );
    assert_eq!(st, 201, "{f}");
    assert_eq!(f["runtime"], "Node20");
    let (_, latest) = s.admin("GET", "/v1/functions/mp/versions/$LATEST", None);
    assert_eq!(latest["codeSize"], zip.len());

    let zip2 = zip_of(&[("index.js", "exports.handler = async () => 2;\n")]);
    let (st, v) = s.raw(
        "PUT",
        "/v1/functions/mp/code",
        Some(ADMIN_TOKEN),
        "application/zip",
        zip2.clone(),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["codeSize"], zip2.len());
}
