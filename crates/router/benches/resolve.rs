//! The router's warm path: resolving `$LATEST`, a version and a weighted
//! alias from the caches (no store read), as every warm invocation does.
//! `cargo bench -p hotswap-router --bench resolve`

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use hotswap_control::{AliasUpdate, CodeLimits, ControlPlane, FunctionRef, NewFunction, Principal};
use hotswap_domain::Runtime;
use hotswap_router::Router;
use hotswap_store::BlobStore;

fn zip_of(body: &str) -> Bytes {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        z.start_file("app.py", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(body.as_bytes()).unwrap();
        z.finish().unwrap();
    }
    Bytes::from(buf.into_inner())
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let me = Principal {
        owner_id: "alice".into(),
        is_admin: false,
    };
    let f = FunctionRef::new("hello");
    let router = rt.block_on(async {
        let store = hotswap_store::open_metadata_store(&format!(
            "sqlite://{}",
            dir.path().join("m.db").display()
        ))
        .await
        .unwrap();
        let blobs = BlobStore::local(&dir.path().join("blobs")).unwrap();
        let control = ControlPlane::new(store, blobs.clone(), CodeLimits::default());
        let runner = hotswap_runner::Runner::start(
            hotswap_runner::RunnerConfig::new(dir.path().join("runner")),
            Arc::new(hotswap_sandbox::ProcessSandbox),
            blobs,
        )
        .unwrap();
        let new = NewFunction {
            name: "hello".into(),
            runtime: Runtime::Python311,
            handler: "app.handler".into(),
            description: None,
            memory_size: None,
            timeout: None,
            environment: BTreeMap::from([("A".into(), "1".into())]),
            layers: Vec::new(),
            tags: BTreeMap::new(),
            vpc_config: None,
            scaling_config: None,
            dead_letter_target: None,
        };
        control
            .create_function(&me, None, new, zip_of("def handler(e, c):\n    return 1\n"))
            .await
            .unwrap();
        control.publish_version(&me, &f, None).await.unwrap();
        control
            .update_code(&me, &f, zip_of("def handler(e, c):\n    return 2\n"))
            .await
            .unwrap();
        control.publish_version(&me, &f, None).await.unwrap();
        control
            .create_alias(&me, &f, "live", 1, BTreeMap::new(), None)
            .await
            .unwrap();
        control
            .update_alias(
                &me,
                &f,
                "live",
                AliasUpdate {
                    version: Some(1),
                    routing_config: Some(BTreeMap::from([(2, 10.0)])),
                    description: None,
                },
            )
            .await
            .unwrap();
        Router::new(control, runner)
    });
    let mut g = c.benchmark_group("router_resolve_warm");
    for q in ["$LATEST", "2", "live"] {
        g.bench_function(q, |b| {
            b.iter(|| rt.block_on(router.resolve(&me, &f, q)).unwrap())
        });
    }
    g.finish();
    // For scale: what a cache miss reads from the store (the function, the
    // alias, the version) — before the router, every call read the first two.
    let control = router.control().clone();
    let mut g = c.benchmark_group("store_reads_of_a_miss");
    g.bench_function("live", |b| {
        b.iter(|| {
            rt.block_on(async {
                let func = control.invocable_function(&me, &f).await.unwrap();
                let alias = control
                    .find_alias(&func.function_id, "live")
                    .await
                    .unwrap()
                    .unwrap();
                control
                    .version_of(&func.function_id, alias.route_version(0.5))
                    .await
                    .unwrap()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
