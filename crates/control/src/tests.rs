//! Control-plane behaviour against a real SQLite store and a local blob
//! directory: ownership, blob/metadata consistency, bootstrap.

use std::collections::BTreeMap;

use hotswap_domain::Runtime;
use hotswap_store::BlobStore;

use crate::code::tests::zip_of;
use crate::*;

struct Fixture {
    cp: ControlPlane,
    _dir: tempfile::TempDir,
    blob_dir: std::path::PathBuf,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = hotswap_store::open_metadata_store(&format!(
        "sqlite://{}",
        dir.path().join("m.db").display()
    ))
    .await
    .unwrap();
    let blob_dir = dir.path().join("blobs");
    let blobs = BlobStore::local(&blob_dir).unwrap();
    Fixture {
        cp: ControlPlane::new(store, blobs, CodeLimits::default()),
        _dir: dir,
        blob_dir,
    }
}

fn user(name: &str) -> Principal {
    Principal {
        owner_id: name.into(),
        is_admin: false,
    }
}

fn admin() -> Principal {
    Principal {
        owner_id: "admin".into(),
        is_admin: true,
    }
}

fn new_fn(name: &str) -> NewFunction {
    NewFunction {
        name: name.into(),
        runtime: Runtime::Python311,
        handler: "app.handler".into(),
        description: None,
        memory_size: None,
        timeout: None,
        environment: BTreeMap::new(),
        layers: Vec::new(),
        tags: BTreeMap::new(),
        vpc_config: None,
        scaling_config: None,
        dead_letter_target: None,
    }
}

fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn code_blobs_follow_the_metadata() {
    let fx = fixture().await;
    let alice = user("alice");
    fx.cp
        .create_function(&alice, None, new_fn("f"), zip_of(&[("app.py", "1")]))
        .await
        .unwrap();
    let first = fx.cp.get_version(&alice, &"f".into(), 0).await.unwrap();
    assert_eq!(files_under(&fx.blob_dir), vec![first.code_location.clone()]);

    let f = fx.cp.get_function(&alice, &"f".into()).await.unwrap();
    let v1 = fx
        .cp
        .publish_version(&alice, &"f".into(), None)
        .await
        .unwrap();
    // Under the function's id: never shared with another owner's "f" or a
    // re-created one.
    assert_eq!(
        v1.code_location,
        format!("functions/{}/versions/1/code.zip", f.function_id)
    );
    let bytes = fx
        .cp
        .blobs()
        .get_verified(&v1.code_location, &v1.code_sha256, v1.code_size)
        .await
        .unwrap();
    assert_eq!(bytes.len() as u64, v1.code_size);

    // new $LATEST code: the old $LATEST blob goes, v1's copy stays
    let latest = fx
        .cp
        .update_code(&alice, &"f".into(), zip_of(&[("app.py", "2")]))
        .await
        .unwrap();
    assert_ne!(latest.code_sha256, first.code_sha256);
    assert_eq!(
        files_under(&fx.blob_dir),
        vec![v1.code_location.clone(), latest.code_location.clone()]
    );

    fx.cp.delete_version(&alice, &"f".into(), 1).await.unwrap();
    assert_eq!(
        files_under(&fx.blob_dir),
        vec![latest.code_location.clone()]
    );
    fx.cp.delete_function(&alice, &"f".into()).await.unwrap();
    assert!(files_under(&fx.blob_dir).is_empty());
}

#[tokio::test]
async fn ownership_rules() {
    let fx = fixture().await;
    let (alice, bob) = (user("alice"), user("bob"));
    fx.cp
        .create_function(&alice, None, new_fn("mine"), zip_of(&[("app.py", "x")]))
        .await
        .unwrap();
    assert!(matches!(
        fx.cp.get_function(&bob, &"mine".into()).await,
        Err(ControlError::NotFound(_))
    ));
    // Bob's own namespace has no "mine"; alice's is closed to him.
    assert!(matches!(
        fx.cp.delete_function(&bob, &"mine".into()).await,
        Err(ControlError::NotFound(_))
    ));
    let alices = FunctionRef::of_owner("alice", "mine");
    assert!(matches!(
        fx.cp.delete_function(&bob, &alices).await,
        Err(ControlError::Forbidden(_))
    ));
    assert!(matches!(
        fx.cp.publish_version(&bob, &alices, None).await,
        Err(ControlError::Forbidden(_))
    ));
    assert!(matches!(
        fx.cp.get_function(&bob, &alices).await,
        Err(ControlError::NotFound(_))
    ));
    assert!(matches!(
        fx.cp.list_versions(&bob, &"mine".into()).await,
        Err(ControlError::NotFound(_))
    ));
    assert_eq!(
        fx.cp
            .get_function(&admin(), &alices)
            .await
            .unwrap()
            .owner_id,
        "alice"
    );
    // An admin without an owner is in its own namespace.
    assert!(matches!(
        fx.cp.get_function(&admin(), &"mine".into()).await,
        Err(ControlError::NotFound(_))
    ));
    // Names are per owner: bob has his own "mine", alice cannot take hers twice.
    let bobs = fx
        .cp
        .create_function(&bob, None, new_fn("mine"), zip_of(&[("app.py", "y")]))
        .await
        .unwrap();
    assert_eq!(bobs.owner_id, "bob");
    let e = fx
        .cp
        .create_function(&alice, None, new_fn("mine"), zip_of(&[("app.py", "y")]))
        .await;
    assert!(matches!(e, Err(ControlError::Conflict(_))));
    let e = fx
        .cp
        .create_function(
            &bob,
            Some("alice"),
            new_fn("other"),
            zip_of(&[("app.py", "y")]),
        )
        .await;
    assert!(matches!(e, Err(ControlError::Forbidden(_))));
    assert!(matches!(
        fx.cp.create_token(&alice, "eve", true).await,
        Err(ControlError::Forbidden(_))
    ));
}

#[tokio::test]
async fn refused_input_leaves_nothing_behind() {
    let fx = fixture().await;
    let mut bad = new_fn("bad");
    bad.memory_size = Some(100);
    let e = fx
        .cp
        .create_function(&user("a"), None, bad, zip_of(&[("app.py", "x")]))
        .await;
    assert!(matches!(e, Err(ControlError::Validation(_))));
    let e = fx
        .cp
        .create_function(
            &user("a"),
            None,
            new_fn("nozip"),
            bytes::Bytes::from_static(b"nope"),
        )
        .await;
    assert!(matches!(e, Err(ControlError::InvalidCode(_))));
    assert!(files_under(&fx.blob_dir).is_empty());
    assert!(fx
        .cp
        .store()
        .get_function("a", "bad")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn config_updates_reach_latest_but_not_published_versions() {
    let fx = fixture().await;
    let a = user("a");
    fx.cp
        .create_function(&a, None, new_fn("cfg"), zip_of(&[("app.py", "x")]))
        .await
        .unwrap();
    fx.cp
        .publish_version(&a, &"cfg".into(), None)
        .await
        .unwrap();
    let patch = FunctionPatch {
        memory_size: Some(1024),
        ..Default::default()
    };
    let f = fx
        .cp
        .update_function(&a, &"cfg".into(), patch)
        .await
        .unwrap();
    assert_eq!(f.memory_size, 1024);
    assert_eq!(
        fx.cp
            .get_version(&a, &"cfg".into(), 0)
            .await
            .unwrap()
            .memory_size,
        1024
    );
    assert_eq!(
        fx.cp
            .get_version(&a, &"cfg".into(), 1)
            .await
            .unwrap()
            .memory_size,
        256
    );
}

#[tokio::test]
async fn admin_bootstrap() {
    let fx = fixture().await;
    let generated = fx
        .cp
        .bootstrap_admin(None)
        .await
        .unwrap()
        .expect("first start generates");
    assert!(
        fx.cp
            .authenticate(&generated)
            .await
            .unwrap()
            .unwrap()
            .is_admin
    );
    assert_eq!(
        fx.cp.bootstrap_admin(None).await.unwrap(),
        None,
        "only once"
    );
    let configured = "configured-admin-token-123";
    assert_eq!(fx.cp.bootstrap_admin(Some(configured)).await.unwrap(), None);
    assert!(
        fx.cp
            .authenticate(configured)
            .await
            .unwrap()
            .unwrap()
            .is_admin
    );
    assert!(fx.cp.bootstrap_admin(Some("short")).await.is_err());
    assert!(fx.cp.authenticate("unknown").await.unwrap().is_none());
    let t = fx.cp.create_token(&admin(), "carol", false).await.unwrap();
    assert_eq!(fx.cp.authenticate(&t).await.unwrap(), Some(user("carol")));
}

#[tokio::test]
async fn dead_letter_targets_must_be_the_owners_other_functions() {
    let fx = fixture().await;
    let (alice, bob) = (user("alice"), user("bob"));
    let code = || zip_of(&[("app.py", "x")]);
    fx.cp
        .create_function(&alice, None, new_fn("dlq"), code())
        .await
        .unwrap();
    fx.cp
        .create_function(&bob, None, new_fn("bobs"), code())
        .await
        .unwrap();
    let with_target = |name: &str, target: &str| NewFunction {
        dead_letter_target: Some(target.into()),
        ..new_fn(name)
    };
    let refused = |r: Result<hotswap_domain::Function>| match r {
        Err(ControlError::Validation(v)) => v.to_string(),
        other => panic!("expected a validation error, got {other:?}"),
    };
    let f = fx
        .cp
        .create_function(&alice, None, with_target("f", "dlq:prod"), code())
        .await
        .unwrap();
    assert_eq!(f.dead_letter_target.as_deref(), Some("dlq:prod"));
    for (target, message) in [
        (
            "missing",
            "DeadLetterTarget function 'missing' does not exist",
        ),
        ("bobs", "DeadLetterTarget function 'bobs' does not exist"),
        (
            "g",
            "DeadLetterTarget must name another function, not this one",
        ),
        ("dlq:", "DeadLetterTarget 'dlq:' must be"),
        ("dlq:bad alias", "must be a function name"),
    ] {
        let m = refused(
            fx.cp
                .create_function(&alice, None, with_target("g", target), code())
                .await,
        );
        assert!(m.contains(message), "{target}: {m}");
    }
    // Changed and cleared by a patch, with the same checks.
    let patch = |t: Option<&str>| FunctionPatch {
        dead_letter_target: Some(t.map(str::to_owned)),
        ..Default::default()
    };
    refused(
        fx.cp
            .update_function(&alice, &"f".into(), patch(Some("f")))
            .await,
    );
    refused(
        fx.cp
            .update_function(&alice, &"f".into(), patch(Some("bobs")))
            .await,
    );
    let f = fx
        .cp
        .update_function(&alice, &"f".into(), patch(Some("dlq")))
        .await
        .unwrap();
    assert_eq!(f.dead_letter_target.as_deref(), Some("dlq"));
    let f = fx
        .cp
        .update_function(&alice, &"f".into(), patch(None))
        .await
        .unwrap();
    assert_eq!(f.dead_letter_target, None);
}

#[tokio::test]
async fn last_use_is_written_once_then_kept_to_five_minutes() {
    let fx = fixture().await;
    let secret = fx.cp.create_token(&admin(), "a", false).await.unwrap();
    let hash = hash_token(&secret);
    let stored = || async { fx.cp.store().find_token(&hash).await.unwrap().unwrap() };
    assert_eq!(stored().await.last_used_at, None);
    fx.cp.verify_token(&secret).await.unwrap().unwrap();
    let first = stored()
        .await
        .last_used_at
        .expect("the first use is written at once");
    // Later verifications within TOUCH_EVERY write nothing.
    for _ in 0..3 {
        fx.cp.verify_token(&secret).await.unwrap().unwrap();
    }
    assert_eq!(stored().await.last_used_at, Some(first));
}
