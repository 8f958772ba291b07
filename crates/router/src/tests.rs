//! The route cache against a real SQLite store: warm calls reuse the
//! prepared version, and every change to what a call resolves to is seen
//! by the next call.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use hotswap_control::{AliasUpdate, CodeLimits, FunctionPatch, NewFunction};
use hotswap_domain::Runtime;
use hotswap_store::BlobStore;

use super::*;

fn zip_of(files: &[(&str, &str)]) -> Bytes {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        for (name, body) in files {
            z.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(body.as_bytes()).unwrap();
        }
        z.finish().unwrap();
    }
    Bytes::from(buf.into_inner())
}

fn python_fn(name: &str, memory_size: Option<u32>) -> NewFunction {
    NewFunction {
        name: name.into(),
        runtime: Runtime::Python311,
        handler: "app.handler".into(),
        description: None,
        memory_size,
        timeout: None,
        environment: BTreeMap::new(),
        layers: Vec::new(),
        tags: BTreeMap::new(),
        vpc_config: None,
        scaling_config: None,
        dead_letter_target: None,
    }
}

fn alice() -> Principal {
    Principal {
        owner_id: "alice".into(),
        is_admin: false,
    }
}

async fn router(dir: &std::path::Path) -> Router {
    let store =
        hotswap_store::open_metadata_store(&format!("sqlite://{}", dir.join("m.db").display()))
            .await
            .unwrap();
    let blobs = BlobStore::local(&dir.join("blobs")).unwrap();
    let control = ControlPlane::new(store, blobs.clone(), CodeLimits::default());
    let runner = Runner::start(
        hotswap_runner::RunnerConfig::new(dir.join("runner")),
        Arc::new(hotswap_sandbox::ProcessSandbox),
        blobs,
    )
    .unwrap();
    Router::new(control, runner)
}

#[tokio::test]
async fn route_cache_follows_changes() {
    let dir = tempfile::tempdir().unwrap();
    let r = router(dir.path()).await;
    let cp = r.control().clone();
    let me = alice();
    let f = FunctionRef::new("hello");
    let new = python_fn("hello", None);
    let code = zip_of(&[("app.py", "def handler(e, c):\n    return 1\n")]);
    cp.create_function(&me, None, new, code.clone())
        .await
        .unwrap();

    // Warm: the same prepared version, not rebuilt.
    let a = r.resolve(&me, &f, "$LATEST").await.unwrap();
    let b = r.resolve(&me, &f, "$LATEST").await.unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(a.executed_version(), "$LATEST");

    // A change to the function is seen by the next call.
    let patch = FunctionPatch {
        timeout: Some(7),
        ..FunctionPatch::default()
    };
    cp.update_function(&me, &f, patch).await.unwrap();
    let c = r.resolve(&me, &f, "$LATEST").await.unwrap();
    assert!(!Arc::ptr_eq(&a, &c));
    assert_eq!(c.version.timeout, 7);

    // Aliases: published versions, weights drawn per call, moves seen at once.
    let v1 = cp.publish_version(&me, &f, None).await.unwrap();
    let code2 = zip_of(&[("app.py", "def handler(e, c):\n    return 2\n")]);
    cp.update_code(&me, &f, code2).await.unwrap();
    let v2 = cp.publish_version(&me, &f, None).await.unwrap();
    cp.create_alias(&me, &f, "live", v1.version, BTreeMap::new(), None)
        .await
        .unwrap();
    assert_eq!(r.resolve(&me, &f, "live").await.unwrap().version.version, 1);
    cp.update_alias(
        &me,
        &f,
        "live",
        AliasUpdate {
            version: Some(v1.version),
            routing_config: Some(BTreeMap::from([(v2.version, 50.0)])),
            description: None,
        },
    )
    .await
    .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        seen.insert(r.resolve(&me, &f, "live").await.unwrap().version.version);
    }
    assert_eq!(seen, [1, 2].into(), "a 50% split reaches both versions");

    // Another tenant never resolves alice's function, cached or not.
    let bob = Principal {
        owner_id: "bob".into(),
        is_admin: false,
    };
    let theirs = FunctionRef::of_owner("alice", "hello");
    assert!(matches!(
        r.resolve(&bob, &theirs, "$LATEST").await,
        Err(RouteError::Control(ControlError::NotFound(_)))
    ));

    // A deleted function is gone for the next call.
    let deleted = cp.delete_function(&me, &f).await.unwrap();
    r.forget_function(&deleted.function_id);
    assert!(matches!(
        r.resolve(&me, &f, "$LATEST").await,
        Err(RouteError::Control(ControlError::NotFound(_)))
    ));
    assert!(r
        .resolve_by_id(&deleted.function_id, "$LATEST")
        .await
        .is_err());
}

#[tokio::test]
async fn another_servers_changes_arrive_within_the_cache_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let r = router(dir.path()).await;
    let me = alice();
    let f = FunctionRef::new("c");
    // Another server sharing the database: its writes do not move our epoch.
    let other = ControlPlane::new(
        r.control().store().clone(),
        r.control().blobs().clone(),
        CodeLimits::default(),
    );
    let new = python_fn("c", Some(256));
    let code = zip_of(&[("app.py", "def handler(e, c):\n    return 1\n")]);
    other.create_function(&me, None, new, code).await.unwrap();
    other.publish_version(&me, &f, None).await.unwrap();
    assert_eq!(
        r.resolve(&me, &f, "1").await.unwrap().version.memory_size,
        256
    );

    let patch = FunctionPatch {
        memory_size: Some(512),
        ..FunctionPatch::default()
    };
    other.update_function(&me, &f, patch).await.unwrap();
    other.delete_version(&me, &f, 1).await.unwrap();
    tokio::time::sleep(CACHE_TTL).await;
    assert_eq!(
        r.resolve(&me, &f, "$LATEST")
            .await
            .unwrap()
            .version
            .memory_size,
        512
    );
    assert!(matches!(
        r.resolve(&me, &f, "1").await,
        Err(RouteError::Control(ControlError::NotFound(_)))
    ));
}

#[test]
fn vpc_specs_become_network_policies() {
    use hotswap_domain::network::{EgressRule, Ipv4Cidr, PortRange, Protocol, Subnet};
    let cidr: Ipv4Cidr = "10.214.0.0/24".parse().unwrap();
    let rule = EgressRule {
        protocol: Protocol::Tcp,
        ports: Some(PortRange::single(5432).unwrap()),
        cidr: None,
        host: true,
    };
    let spec = hotswap_domain::NetworkSpec {
        subnets: vec![Subnet::new("a", cidr, "admin")],
        rules: vec![rule.clone()],
    };
    let p = network_policy("fid", 3, &spec);
    assert_eq!(p.key, "fid@3");
    assert_eq!(p.subnets, [cidr]);
    assert_eq!(p.rules, [rule]);
}
