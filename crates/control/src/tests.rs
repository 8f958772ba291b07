//! Control-plane behaviour against a real SQLite store and a local blob
//! directory: ownership, blob/metadata consistency, bootstrap.

use std::collections::BTreeMap;

use hotswap_domain::{EgressRuleInput, Runtime};
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

// ---- networking ----------------------------------------------------------------

fn rule(protocol: &str, ports: Option<&str>, cidr: Option<&str>, host: bool) -> EgressRuleInput {
    EgressRuleInput {
        protocol: protocol.into(),
        ports: ports.map(Into::into),
        cidr: cidr.map(Into::into),
        host,
    }
}

fn group_spec(name: &str, egress: Vec<EgressRuleInput>) -> SecurityGroupSpec {
    SecurityGroupSpec {
        group_name: name.into(),
        egress,
    }
}

fn subnet_spec(name: &str, cidr: &str) -> NewSubnet {
    NewSubnet {
        subnet_name: name.into(),
        cidr: cidr.into(),
    }
}

fn messages(e: ControlError) -> Vec<String> {
    match e {
        ControlError::Validation(v) => v.into_messages(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

fn vpc(subnets: &[&str], groups: &[&str]) -> Option<hotswap_domain::VpcConfig> {
    Some(hotswap_domain::VpcConfig {
        subnet_ids: subnets.iter().map(|s| s.to_string()).collect(),
        security_group_ids: groups.iter().map(|s| s.to_string()).collect(),
        vpc_id: Some("vpc-1".into()),
    })
}

#[tokio::test]
async fn subnets_are_made_by_admins_and_seen_by_everyone() {
    let fx = fixture().await;
    let alice = user("alice");
    let epoch = fx.cp.routing_epoch();
    let s = fx
        .cp
        .create_subnet(&admin(), subnet_spec("app", "10.20.0.0/24"))
        .await
        .unwrap();
    assert!(fx.cp.routing_epoch() > epoch);
    assert_eq!(s.created_by, "admin");
    assert!(matches!(
        fx.cp
            .create_subnet(&alice, subnet_spec("mine", "10.30.0.0/24"))
            .await,
        Err(ControlError::Forbidden(_))
    ));
    assert_eq!(fx.cp.list_subnets(&alice).await.unwrap(), vec![s.clone()]);
    assert_eq!(fx.cp.get_subnet(&alice, &s.subnet_id).await.unwrap(), s);
    assert!(matches!(
        fx.cp.get_subnet(&alice, "subnet-nope").await,
        Err(ControlError::NotFound(_))
    ));

    let e = messages(
        fx.cp
            .create_subnet(&admin(), subnet_spec("inner", "10.20.0.128/25"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        e,
        vec![format!(
            "cidr: 10.20.0.128/25 overlaps subnet 'app' ({}, 10.20.0.0/24)",
            s.subnet_id
        )]
    );
    let e = messages(
        fx.cp
            .create_subnet(&admin(), subnet_spec("bad name", "8.8.8.0/24"))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("subnetName: ") && e[1].starts_with("cidr: 8.8.8.0/24"));
    assert!(matches!(
        fx.cp
            .create_subnet(&admin(), subnet_spec("app", "10.21.0.0/24"))
            .await,
        Err(ControlError::Conflict(_))
    ));

    assert!(matches!(
        fx.cp.delete_subnet(&alice, &s.subnet_id).await,
        Err(ControlError::Forbidden(_))
    ));
    let epoch = fx.cp.routing_epoch();
    fx.cp.delete_subnet(&admin(), &s.subnet_id).await.unwrap();
    assert!(fx.cp.routing_epoch() > epoch);
    assert!(matches!(
        fx.cp.delete_subnet(&admin(), &s.subnet_id).await,
        Err(ControlError::NotFound(_))
    ));
}

#[tokio::test]
async fn security_groups_are_their_owners() {
    let fx = fixture().await;
    let (alice, bob) = (user("alice"), user("bob"));
    let epoch = fx.cp.routing_epoch();
    let g = fx
        .cp
        .create_security_group(
            &alice,
            None,
            group_spec("db", vec![rule("tcp", Some("5432"), None, true)]),
        )
        .await
        .unwrap();
    assert!(fx.cp.routing_epoch() > epoch);
    assert_eq!(g.owner_id, "alice");
    assert!(g.security_group_id.starts_with("sg-"));

    // Bob neither sees nor changes it.
    assert!(matches!(
        fx.cp.get_security_group(&bob, &g.security_group_id).await,
        Err(ControlError::NotFound(_))
    ));
    assert!(fx
        .cp
        .list_security_groups(&bob, None)
        .await
        .unwrap()
        .is_empty());
    assert!(fx
        .cp
        .list_security_groups(&bob, Some("alice"))
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        fx.cp
            .update_security_group(&bob, &g.security_group_id, group_spec("x", vec![]))
            .await,
        Err(ControlError::Forbidden(_))
    ));
    assert!(matches!(
        fx.cp
            .delete_security_group(&bob, &g.security_group_id)
            .await,
        Err(ControlError::Forbidden(_))
    ));
    assert!(matches!(
        fx.cp
            .create_security_group(&bob, Some("alice"), group_spec("x", vec![]))
            .await,
        Err(ControlError::Forbidden(_))
    ));
    // The same name is fine for another owner, not twice for one.
    fx.cp
        .create_security_group(&bob, None, group_spec("db", vec![]))
        .await
        .unwrap();
    assert!(matches!(
        fx.cp
            .create_security_group(&alice, None, group_spec("db", vec![]))
            .await,
        Err(ControlError::Conflict(_))
    ));
    // An admin sees all, or one owner's, and creates for an owner.
    assert_eq!(
        fx.cp
            .list_security_groups(&admin(), None)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        fx.cp
            .list_security_groups(&admin(), Some("alice"))
            .await
            .unwrap(),
        vec![g.clone()]
    );
    let for_alice = fx
        .cp
        .create_security_group(&admin(), Some("alice"), group_spec("web", vec![]))
        .await
        .unwrap();
    assert_eq!(for_alice.owner_id, "alice");

    // Every broken field is named.
    let e = messages(
        fx.cp
            .create_security_group(
                &alice,
                None,
                group_spec(
                    "ok",
                    vec![
                        rule("icmp", None, Some("10.0.0.0/8"), false),
                        rule("tcp", Some("70000"), Some("10.0.0.1/8"), false),
                        rule("all", Some("80"), None, true),
                    ],
                ),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(e.len(), 4, "{e:?}");
    assert!(e[0].starts_with("egress[0].protocol: "));
    assert!(e[1].starts_with("egress[1].ports: "));
    assert_eq!(
        e[2],
        "egress[1].cidr: 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8"
    );
    assert!(e[3].starts_with("egress[2].ports: only tcp and udp"));
    let many = vec![rule("tcp", None, None, true); 61];
    let e = messages(
        fx.cp
            .create_security_group(&alice, None, group_spec("many", many))
            .await
            .unwrap_err(),
    );
    assert_eq!(e, vec!["egress: at most 60 rules (got 61)"]);

    // PUT replaces name and rules.
    let updated = fx
        .cp
        .update_security_group(
            &alice,
            &g.security_group_id,
            group_spec("db2", vec![rule("all", None, Some("10.1.0.0/16"), false)]),
        )
        .await
        .unwrap();
    assert_eq!(updated.group_name, "db2");
    assert_eq!(updated.egress.len(), 1);
    assert_eq!(updated.created_at, g.created_at);
    assert!(matches!(
        fx.cp
            .update_security_group(&alice, &g.security_group_id, group_spec("web", vec![]))
            .await,
        Err(ControlError::Conflict(_))
    ));
    fx.cp
        .delete_security_group(&alice, &g.security_group_id)
        .await
        .unwrap();
    assert!(matches!(
        fx.cp
            .delete_security_group(&alice, &g.security_group_id)
            .await,
        Err(ControlError::NotFound(_))
    ));
}

#[tokio::test]
async fn functions_name_existing_subnets_and_their_owners_groups() {
    let fx = fixture().await;
    let (alice, bob) = (user("alice"), user("bob"));
    let net = fx
        .cp
        .create_subnet(&admin(), subnet_spec("app", "10.20.0.0/24"))
        .await
        .unwrap();
    let mine = fx
        .cp
        .create_security_group(
            &alice,
            None,
            group_spec("db", vec![rule("tcp", Some("5432"), None, true)]),
        )
        .await
        .unwrap();
    let theirs = fx
        .cp
        .create_security_group(&bob, None, group_spec("b", vec![]))
        .await
        .unwrap();
    let code = || zip_of(&[("app.py", "1")]);

    let mut f = new_fn("f");
    f.vpc_config = vpc(
        &[&net.subnet_id, "subnet-nope"],
        &[&mine.security_group_id, &theirs.security_group_id],
    );
    let e = messages(
        fx.cp
            .create_function(&alice, None, f.clone(), code())
            .await
            .unwrap_err(),
    );
    assert_eq!(
        e,
        vec![
            "vpcConfig.subnetIds[1]: subnet 'subnet-nope' does not exist".to_owned(),
            format!(
                "vpcConfig.securityGroupIds[1]: security group '{}' does not exist",
                theirs.security_group_id
            ),
        ]
    );
    // Not even an admin puts bob's group on alice's function.
    assert_eq!(
        messages(
            fx.cp
                .create_function(&admin(), Some("alice"), f.clone(), code())
                .await
                .unwrap_err()
        )
        .len(),
        2
    );
    // Groups need a subnet.
    f.vpc_config = vpc(&[], &[&mine.security_group_id]);
    assert_eq!(
        messages(
            fx.cp
                .create_function(&alice, None, f.clone(), code())
                .await
                .unwrap_err()
        ),
        vec!["VpcConfig.SubnetIds is required when SecurityGroupIds are set"]
    );

    f.vpc_config = vpc(&[&net.subnet_id], &[&mine.security_group_id]);
    fx.cp
        .create_function(&alice, None, f.clone(), code())
        .await
        .unwrap();
    let latest = fx.cp.get_version(&alice, &"f".into(), 0).await.unwrap();
    assert_eq!(latest.vpc_config, f.vpc_config);
    let spec = fx.cp.network_for(&latest).await.unwrap().unwrap();
    assert_eq!(spec.subnets, vec![net.clone()]);
    assert_eq!(spec.rules, mine.egress);

    // In use: neither can go.
    for e in [
        fx.cp
            .delete_subnet(&admin(), &net.subnet_id)
            .await
            .unwrap_err(),
        fx.cp
            .delete_security_group(&alice, &mine.security_group_id)
            .await
            .unwrap_err(),
    ] {
        match e {
            ControlError::Conflict(m) => assert!(m.ends_with("alice/f ($LATEST)"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    // A published version keeps its vpcConfig; $LATEST follows the function.
    let v1 = fx
        .cp
        .publish_version(&alice, &"f".into(), None)
        .await
        .unwrap();
    assert_eq!(v1.vpc_config, f.vpc_config);
    let patch = FunctionPatch {
        vpc_config: Some(None),
        ..Default::default()
    };
    fx.cp
        .update_function(&alice, &"f".into(), patch)
        .await
        .unwrap();
    let latest = fx.cp.get_version(&alice, &"f".into(), 0).await.unwrap();
    assert_eq!(latest.vpc_config, None);
    assert_eq!(fx.cp.network_for(&latest).await.unwrap(), None);
    let v1 = fx.cp.get_version(&alice, &"f".into(), 1).await.unwrap();
    assert_eq!(v1.vpc_config, f.vpc_config);
    assert!(fx.cp.network_for(&v1).await.unwrap().is_some());
    match fx.cp.delete_subnet(&admin(), &net.subnet_id).await {
        Err(ControlError::Conflict(m)) => assert!(m.ends_with("alice/f (v1)"), "{m}"),
        other => panic!("{other:?}"),
    }

    // Updating with a bad vpcConfig is refused like creating.
    let patch = FunctionPatch {
        vpc_config: Some(vpc(&["subnet-nope"], &[])),
        ..Default::default()
    };
    assert_eq!(
        messages(
            fx.cp
                .update_function(&alice, &"f".into(), patch)
                .await
                .unwrap_err()
        ),
        vec!["vpcConfig.subnetIds[0]: subnet 'subnet-nope' does not exist"]
    );

    fx.cp.delete_version(&alice, &"f".into(), 1).await.unwrap();
    fx.cp.delete_subnet(&admin(), &net.subnet_id).await.unwrap();
    fx.cp
        .delete_security_group(&alice, &mine.security_group_id)
        .await
        .unwrap();
    // A reference that went missing anyway is skipped: no subnet, no network.
    assert_eq!(fx.cp.network_for(&v1).await.unwrap(), None);
}
