//! The metadata store suite: every case is written once, as an async fn over
//! a [`Ctx`], and `suite!` runs each against SQLite (a temp file) and
//! PostgreSQL (a fresh database per test, dropped afterwards).
//!
//! PostgreSQL: `HOTSWAP_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) must reach a server whose
//! user may create databases. When it cannot be reached the PostgreSQL tests
//! fail; they never skip.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection;

use hotswap_domain::deployment::DeploymentMetrics;
use hotswap_domain::time::{self, Timestamp};
use hotswap_domain::{
    AsyncInvocation, AsyncStatus, Deployment, DeploymentConfig, DeploymentStatus,
    DeploymentStrategy, Function, FunctionAlias, FunctionVersion, InvocationResult, RunnerNode,
    Runtime, ScalingConfig, Trigger, TriggerConfig, TriggerType, VersionStatus, VpcConfig,
};
use hotswap_domain::{EgressRule, EgressRuleInput, SecurityGroup, Subnet};
use hotswap_domain::{QueueMessage, Receipt};
use hotswap_store::{
    open_metadata_store, ApiToken, Claimed, FunctionFilter, MetadataStore, Result, StoreError,
    StreamShardState, TokenRole, VpcUser,
};

// ---- harness ---------------------------------------------------------------

/// What a case gets: an open store and the means to reopen it.
struct Ctx {
    store: Arc<dyn MetadataStore>,
    url: String,
    /// Which backend, for the summary check.
    backend: &'static str,
}

impl Ctx {
    async fn open(url: String, backend: &'static str) -> Self {
        let store = open_metadata_store(&url)
            .await
            .unwrap_or_else(|e| panic!("opening {backend} store: {e:?}"));
        Self {
            store,
            url,
            backend,
        }
    }

    /// Drops the store (closing its pool) and opens the same database again.
    async fn reopen(self) -> Self {
        let Ctx {
            store,
            url,
            backend,
        } = self;
        drop(store);
        Self::open(url, backend).await
    }
}

async fn run_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}",
        dir.path().join("nested/metadata.db").display()
    );
    let ctx = Ctx::open(url, "sqlite").await;
    case(ctx).await;
}

fn postgres_admin_url() -> String {
    std::env::var("HOTSWAP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn run_postgres<F, Fut>(case: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let admin_url = postgres_admin_url();
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin_url}: {e}. Start PostgreSQL or point \
             HOTSWAP_TEST_DATABASE_URL at one; the PostgreSQL tests fail rather than skip."
            )
        });
    let db = format!("hotswap_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {db} at {admin_url}: {e}"));
    let mut url = url::Url::parse(&admin_url).expect("HOTSWAP_TEST_DATABASE_URL is a URL");
    url.set_path(&db);

    // The case runs in its own task so that a failing assertion still lets
    // the database be dropped.
    let ctx = Ctx::open(url.to_string(), "postgres").await;
    let outcome = tokio::spawn(case(ctx)).await;

    let dropped = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
    if let Err(e) = dropped {
        eprintln!("warning: could not drop test database {db}: {e}");
    }
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test task failed: {e}"),
        }
    }
}

/// Instantiates each case as a test for SQLite and one for PostgreSQL.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::run_sqlite(super::$case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::run_postgres(super::$case).await;
                }
            )*
        }
    };
}

suite!(
    two_owners_may_each_have_a_function_of_one_name,
    a_recreated_function_gets_a_new_id_and_none_of_the_old_rows,
    a_database_at_migration_5_migrates_with_its_data,
    layer_versions_number_per_name_and_belong_to_one_owner,
    async_invocations_are_claimed_once_and_reclaimed_after_their_lease,
    a_stale_attempt_cannot_overwrite_a_newer_claim,
    an_exhausted_invocation_is_never_run_again,
    dead_letters_are_queued_with_the_failure_once,
    invocations_list_newest_first_by_function_owner_and_status,
    invocation_counters_add_up_and_survive_configuration_writes,
    summary_names_the_backend,
    function_round_trip,
    function_update_replaces_configuration,
    functions_paginate_and_filter,
    counters_and_extreme_values_round_trip,
    version_round_trip_and_status,
    version_numbers_are_never_reused,
    concurrent_allocations_are_distinct,
    concurrent_publishes_keep_the_newest,
    delete_version_refused_while_aliased,
    delete_version_refused_while_active_and_invoked,
    alias_round_trip,
    alias_refused_for_missing_versions,
    trigger_round_trip,
    schedule_ticks_are_claimed_once_with_their_invocation,
    runner_round_trip,
    deployment_round_trip,
    deployment_steps_move_the_alias_atomically_and_compare_revisions,
    one_active_deployment_per_alias,
    concurrent_deployments_admit_one,
    token_round_trip,
    tokens_list_by_owner_revoke_and_touch,
    only_live_admin_tokens_count_as_admins,
    delete_function_cascades,
    data_survives_reopen,
    corrupt_rows_are_reported_not_panicked_on,
    subnets_round_trip_and_never_overlap,
    security_groups_belong_to_their_owner,
    network_resources_in_use_cannot_be_deleted,
    versions_keep_their_vpc_config,
    queue_messages_are_sent_received_and_acknowledged,
    invisible_messages_come_back_only_after_their_visibility,
    released_messages_come_back_and_may_take_their_receive_back,
    dead_lettered_messages_move_with_their_attributes,
    purging_empties_one_owners_queue,
    concurrent_receivers_get_each_message_once,
    stream_leases_go_to_one_owner_until_they_expire,
    a_stale_owner_cannot_move_the_checkpoint,
    concurrent_lease_takers_get_one_lease,
    stream_shards_go_with_their_trigger,
);

// ---- fixtures ---------------------------------------------------------------

/// A timestamp with a non-zero microsecond part.
fn at(micros: i64) -> Timestamp {
    Timestamp::from_timestamp_micros(micros).expect("valid timestamp")
}

fn function(name: &str, owner: &str) -> Function {
    let mut f = Function::new(name, Runtime::Python311, "app.handler", owner);
    // In these cases a function's id is its name, so that its rows are
    // addressed by the name they were created with (the identity cases
    // below use real ids).
    f.function_id = name.to_owned();
    f.description = Some(format!("the {name} function"));
    f.memory_size = 512;
    f.timeout = 60;
    f.environment = BTreeMap::from([
        ("LOG_LEVEL".to_owned(), "debug".to_owned()),
        ("EMPTY".to_owned(), String::new()),
        ("QUOTED".to_owned(), "a \"b\" 'c' é ✓".to_owned()),
    ]);
    f.layers = vec!["numpy".to_owned(), "pandas".to_owned()];
    f.vpc_config = Some(VpcConfig {
        subnet_ids: vec!["subnet-1".to_owned(), "subnet-2".to_owned()],
        security_group_ids: vec!["sg-1".to_owned()],
        vpc_id: Some("vpc-9".to_owned()),
    });
    f.tags = BTreeMap::from([
        ("team".to_owned(), "core".to_owned()),
        ("env".to_owned(), "prod".to_owned()),
    ]);
    f.created_at = at(1_700_000_000_123_456);
    f.updated_at = at(1_700_000_100_654_321);
    f.total_invocations = 1 << 40;
    f.last_invoked_at = Some(at(1_700_000_200_000_001));
    f.dead_letter_target = Some("on-failure:prod".to_owned());
    f.scaling_config = ScalingConfig {
        min_instances: 1,
        max_instances: 7,
        target_concurrency: 3,
        scale_up_cooldown: Duration::from_millis(1500),
        scale_down_cooldown: Duration::from_secs(90),
        pre_provisioned_concurrency: 2,
        keep_warm_enabled: true,
        keep_warm_interval: Duration::from_secs(240),
    };
    f
}

fn snapshot(f: &Function, n: u32) -> FunctionVersion {
    let mut v = FunctionVersion::snapshot(
        f,
        n,
        format!("{n:064x}"),
        1000 + u64::from(n),
        "alice",
        Some(format!("version {n}")),
    );
    v.created_at = at(1_700_000_300_000_007 + i64::from(n));
    v
}

/// Creates a function with its `$LATEST`.
async fn create(store: &dyn MetadataStore, name: &str, owner: &str) -> Function {
    let f = function(name, owner);
    store
        .create_function(&f, &snapshot(&f, 0))
        .await
        .expect("create function");
    f
}

/// Creates a function and publishes versions 1..=n.
async fn create_with_versions(store: &dyn MetadataStore, name: &str, n: u32) -> Function {
    let f = create(store, name, "owner-1").await;
    for _ in 0..n {
        let number = store.allocate_version_number(name).await.expect("allocate");
        store
            .insert_version(&snapshot(&f, number))
            .await
            .expect("insert version");
    }
    f
}

fn alias(function: &str, name: &str, version: u32) -> FunctionAlias {
    let mut a = FunctionAlias::new(function, name, version).of_function(function);
    a.description = Some(format!("{name} traffic"));
    a.created_at = at(1_700_000_400_000_011);
    a.updated_at = at(1_700_000_400_000_012);
    a
}

fn deployment(function: &str, alias: &str, started: i64) -> Deployment {
    let config = DeploymentConfig {
        canary_percentage: Some(12.5),
        canary_duration: Some(Duration::from_secs(300)),
        canary_increments: Some(vec![0.1 + 0.2, 50.0, 100.0]),
        rollback_on_error_rate: Some(1.0 / 3.0),
        rollback_on_latency_p99: Some(250.0),
        rollback_on_success_rate: Some(99.9),
        ..Default::default()
    };
    let mut d = Deployment::new(
        function,
        alias,
        Some(1),
        2,
        DeploymentStrategy::Canary,
        config,
        "alice",
    );
    d.function_id = function.to_owned();
    d.started_at = at(started);
    d
}

/// A trigger of the function whose id is `function`.
fn trigger_of(function: &str, kind: TriggerType, config: TriggerConfig) -> Trigger {
    let mut t = Trigger::new(function, kind, config);
    t.function_id = function.to_owned();
    t
}

fn conflict<T: std::fmt::Debug>(result: Result<T>) -> String {
    match result {
        Err(StoreError::Conflict(message)) => message,
        other => panic!("expected Conflict, got {other:?}"),
    }
}

fn not_found<T: std::fmt::Debug>(result: Result<T>) -> (&'static str, String) {
    match result {
        Err(StoreError::NotFound { kind, id }) => (kind, id),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

async fn published(store: &dyn MetadataStore, function: &str) -> Option<String> {
    store
        .get_function_by_id(function)
        .await
        .expect("get function")
        .expect("function exists")
        .published_version
}

fn names(functions: &[Function]) -> Vec<String> {
    functions.iter().map(|f| f.name.clone()).collect()
}

// ---- cases ------------------------------------------------------------------

async fn summary_names_the_backend(ctx: Ctx) {
    let summary = ctx.store.summary();
    assert!(
        summary.starts_with(ctx.backend),
        "summary '{summary}' should start with '{}'",
        ctx.backend
    );
    assert!(!summary.contains("password"));
}

async fn function_round_trip(ctx: Ctx) {
    let s = ctx.store.as_ref();
    assert_eq!(s.get_function_by_id("hello").await.unwrap(), None);
    let f = create(s, "hello", "owner-1").await;

    let got = s
        .get_function_by_id("hello")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(got.name, "hello");
    assert_eq!(got.owner_id, "owner-1");
    assert_eq!(got.description.as_deref(), Some("the hello function"));
    assert_eq!(got.runtime, Runtime::Python311);
    assert_eq!(got.handler, "app.handler");
    assert_eq!((got.memory_size, got.timeout), (512, 60));
    assert_eq!(got.environment, f.environment);
    assert_eq!(got.environment["QUOTED"], "a \"b\" 'c' é ✓");
    assert_eq!(got.layers, ["numpy", "pandas"]);
    assert_eq!(got.vpc_config, f.vpc_config);
    assert_eq!(got.tags, f.tags);
    assert_eq!(got.published_version, None);
    assert_eq!(got.created_at, at(1_700_000_000_123_456));
    assert_eq!(got.updated_at, f.updated_at);
    assert_eq!(got.total_invocations, 1 << 40);
    assert_eq!(got.last_invoked_at, f.last_invoked_at);
    assert_eq!(got.scaling_config, f.scaling_config);
    assert_eq!(
        got.scaling_config.scale_up_cooldown,
        Duration::from_millis(1500)
    );
    assert_eq!(got, f);

    let latest = s.get_version("hello", 0).await.unwrap().expect("$LATEST");
    assert_eq!(latest, snapshot(&f, 0));

    // A minimal function: every Option empty, every map empty.
    let mut bare = Function::new("bare", Runtime::Node20, "index.handler", "owner-2");
    bare.function_id = "bare".to_owned();
    s.create_function(&bare, &snapshot(&bare, 0)).await.unwrap();
    assert_eq!(
        s.get_function_by_id("bare").await.unwrap(),
        Some(bare.clone())
    );

    let message = conflict(s.create_function(&f, &snapshot(&f, 0)).await);
    assert_eq!(message, "function 'hello' already exists");
    // The refused create changed nothing.
    assert_eq!(
        s.get_function_by_id("hello").await.unwrap(),
        Some(f.clone())
    );

    // A $LATEST that is not version 0 of this function is refused.
    conflict(
        s.create_function(&function("other", "o"), &snapshot(&f, 0))
            .await,
    );
    assert_eq!(s.get_function_by_id("other").await.unwrap(), None);
}

async fn function_update_replaces_configuration(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let f = create_with_versions(s, "upd", 2).await;
    let mut changed = s.get_function_by_id("upd").await.unwrap().unwrap();
    assert_eq!(changed.published_version.as_deref(), Some("v2"));
    changed.description = None;
    changed.runtime = Runtime::Node20;
    changed.handler = "index.main".to_owned();
    changed.memory_size = 1024;
    changed.environment = BTreeMap::from([("ONLY".to_owned(), "one".to_owned())]);
    changed.layers.clear();
    changed.vpc_config = None;
    changed.tags = BTreeMap::from([("tier".to_owned(), "gold".to_owned())]);
    changed.updated_at = at(1_800_000_000_000_001);
    // Stale counters and a stale published version are not written back:
    // `record_invocations` and `insert_version` own them.
    let stored_last_invoked = changed.last_invoked_at;
    changed.last_invoked_at = None;
    changed.published_version = Some("v1".to_owned());
    let mut latest = snapshot(&changed, 0);
    latest.code_sha256 = "ff".repeat(32);
    s.update_function(&changed, &latest).await.unwrap();

    let got = s.get_function_by_id("upd").await.unwrap().unwrap();
    assert_eq!(got.published_version.as_deref(), Some("v2"));
    changed.published_version = Some("v2".to_owned());
    changed.last_invoked_at = stored_last_invoked;
    assert_eq!(got, changed);
    assert_eq!(s.get_version("upd", 0).await.unwrap(), Some(latest));
    // Published versions are untouched.
    assert_eq!(
        s.get_version("upd", 1).await.unwrap(),
        Some(snapshot(&f, 1))
    );

    // Tags are filtered on the new values.
    let tagged = |k: &str, v: Option<&str>| FunctionFilter {
        tag: Some((k.to_owned(), v.map(str::to_owned))),
        ..Default::default()
    };
    let page = s.list_functions(&tagged("team", None)).await.unwrap();
    assert!(page.items.is_empty());
    let page = s
        .list_functions(&tagged("tier", Some("gold")))
        .await
        .unwrap();
    assert_eq!(names(&page.items), ["upd"]);

    let missing = function("missing", "o");
    let (kind, id) = not_found(s.update_function(&missing, &snapshot(&missing, 0)).await);
    assert_eq!((kind, id.as_str()), ("function", "missing"));
    assert_eq!(s.get_function_by_id("missing").await.unwrap(), None);
}

async fn functions_paginate_and_filter(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let mut all = Vec::new();
    for i in 0..25 {
        let name = format!("fn-{i:02}");
        let mut f = function(&name, if i % 2 == 0 { "even" } else { "odd" });
        f.tags = BTreeMap::from([
            ("index".to_owned(), i.to_string()),
            ("mod3".to_owned(), (i % 3).to_string()),
        ]);
        if i % 5 == 0 {
            f.tags.insert("fifth".to_owned(), String::new());
        }
        s.create_function(&f, &snapshot(&f, 0)).await.unwrap();
        all.push(name);
    }

    // Three pages of 10, 10, 5, joined they are every name in order.
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = s
            .list_functions(&FunctionFilter {
                limit: 10,
                after: after.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        pages += 1;
        let expected_len = if pages < 3 { 10 } else { 5 };
        assert_eq!(page.items.len(), expected_len, "page {pages}");
        seen.extend(names(&page.items));
        match page.next_token {
            Some(token) => {
                let last = page.items.last().unwrap();
                assert_eq!(
                    token,
                    format!("{}:{}", last.name, last.owner_id),
                    "next token is the last name and owner"
                );
                after = Some(token);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, all);
    // Full items come back, not just names.
    let first = s
        .list_functions(&FunctionFilter {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        first.items,
        vec![s.get_function_by_id("fn-00").await.unwrap().unwrap()]
    );
    assert_eq!(first.next_token.as_deref(), Some("fn-00:even"));

    // A page that ends exactly at the last row has no next token.
    let exact = s
        .list_functions(&FunctionFilter {
            limit: 5,
            after: Some("fn-19".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        names(&exact.items),
        ["fn-20", "fn-21", "fn-22", "fn-23", "fn-24"]
    );
    assert_eq!(exact.next_token, None);

    // The cursor is exclusive, and need not be a stored name.
    let tail = s
        .list_functions(&FunctionFilter {
            after: Some("fn-22".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(names(&tail.items), ["fn-23", "fn-24"]);
    let tail = s
        .list_functions(&FunctionFilter {
            after: Some("fn-225".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(names(&tail.items), ["fn-23", "fn-24"]);

    // limit 0 means the default (50), limits above 1000 are clamped.
    for limit in [0, 5000] {
        let page = s
            .list_functions(&FunctionFilter {
                limit,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page.items.len(), 25, "limit {limit}");
        assert_eq!(page.next_token, None);
    }

    // Owner filter, paginated.
    let odd = |after: Option<String>| FunctionFilter {
        owner_id: Some("odd".to_owned()),
        limit: 7,
        after,
        ..Default::default()
    };
    let page1 = s.list_functions(&odd(None)).await.unwrap();
    assert_eq!(
        names(&page1.items),
        ["fn-01", "fn-03", "fn-05", "fn-07", "fn-09", "fn-11", "fn-13"]
    );
    assert!(page1.items.iter().all(|f| f.owner_id == "odd"));
    let page2 = s.list_functions(&odd(page1.next_token)).await.unwrap();
    assert_eq!(
        names(&page2.items),
        ["fn-15", "fn-17", "fn-19", "fn-21", "fn-23"]
    );
    assert_eq!(page2.next_token, None);

    // Tag key, tag key and value, combined with the owner.
    let tag = |k: &str, v: Option<&str>, owner: Option<&str>| FunctionFilter {
        tag: Some((k.to_owned(), v.map(str::to_owned))),
        owner_id: owner.map(str::to_owned),
        ..Default::default()
    };
    let fifth = s.list_functions(&tag("fifth", None, None)).await.unwrap();
    assert_eq!(
        names(&fifth.items),
        ["fn-00", "fn-05", "fn-10", "fn-15", "fn-20"]
    );
    let fifth_empty = s
        .list_functions(&tag("fifth", Some(""), None))
        .await
        .unwrap();
    assert_eq!(fifth_empty.items.len(), 5);
    let mod3 = s
        .list_functions(&tag("mod3", Some("1"), None))
        .await
        .unwrap();
    assert_eq!(
        names(&mod3.items),
        ["fn-01", "fn-04", "fn-07", "fn-10", "fn-13", "fn-16", "fn-19", "fn-22"]
    );
    let mod3_even = s
        .list_functions(&tag("mod3", Some("1"), Some("even")))
        .await
        .unwrap();
    assert_eq!(
        names(&mod3_even.items),
        ["fn-04", "fn-10", "fn-16", "fn-22"]
    );
    let none = s
        .list_functions(&tag("mod3", Some("7"), None))
        .await
        .unwrap();
    assert!(none.items.is_empty());
    assert_eq!(none.next_token, None);
    let nobody = s
        .list_functions(&FunctionFilter {
            owner_id: Some("nobody".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(nobody.items.is_empty());
}

async fn counters_and_extreme_values_round_trip(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let mut f = function("extreme", "o");
    f.total_invocations = i64::MAX as u64;
    f.memory_size = u32::MAX;
    f.timeout = u32::MAX;
    f.created_at = at(-1_234_567); // before the epoch
    f.last_invoked_at = Some(at(253_402_300_799_999_999)); // 9999-12-31
    let mut latest = snapshot(&f, 0);
    latest.code_size = i64::MAX as u64;
    latest.invocation_count = u64::from(u32::MAX) + 1;
    s.create_function(&f, &latest).await.unwrap();
    assert_eq!(
        s.get_function_by_id("extreme").await.unwrap(),
        Some(f.clone())
    );
    assert_eq!(s.get_version("extreme", 0).await.unwrap(), Some(latest));

    // Counters beyond what the database holds are refused, not wrapped.
    let mut too_big = function("too-big", "o");
    too_big.total_invocations = u64::MAX;
    let message = conflict(s.create_function(&too_big, &snapshot(&too_big, 0)).await);
    assert!(message.contains("total_invocations"), "{message}");
    assert_eq!(s.get_function_by_id("too-big").await.unwrap(), None);

    // Weights that are not the shortest decimal of themselves.
    let number = s.allocate_version_number("extreme").await.unwrap();
    s.insert_version(&snapshot(&f, number)).await.unwrap();
    let mut a = alias("extreme", "weights", 1);
    a.routing_config = BTreeMap::from([(1, 0.1 + 0.2), (0, 100.0 - (0.1 + 0.2))]);
    s.create_alias(&a).await.unwrap();
    let got = s.get_alias("extreme", "weights").await.unwrap().unwrap();
    assert_eq!(got.routing_config[&1].to_bits(), (0.1f64 + 0.2).to_bits());
    assert_eq!(got, a);

    // NaN has no JSON form: refused rather than stored as null.
    let mut nan = alias("extreme", "nan", 1);
    nan.routing_config = BTreeMap::from([(1, f64::NAN)]);
    conflict(s.create_alias(&nan).await);
    assert_eq!(s.get_alias("extreme", "nan").await.unwrap(), None);
}

async fn invocation_counters_add_up_and_survive_configuration_writes(ctx: Ctx) {
    let s = ctx.store.clone();
    let f = create_with_versions(s.as_ref(), "counted", 1).await;
    // 20 concurrent writers of 5 each: atomic increments lose nothing.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.record_invocations("counted", 1, 5, at(1_900_000_000_000_000 + i))
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    s.record_invocations("counted", 0, 3, at(1_600_000_000_000_000))
        .await
        .unwrap();
    let got = s.get_function_by_id("counted").await.unwrap().unwrap();
    assert_eq!(got.total_invocations, f.total_invocations + 103);
    assert_eq!(
        got.last_invoked_at,
        Some(at(1_900_000_000_000_019)),
        "only moves forward"
    );
    let v1_before = snapshot(&f, 1).invocation_count;
    let latest_before = snapshot(&f, 0).invocation_count;
    assert_eq!(
        s.get_version("counted", 1)
            .await
            .unwrap()
            .unwrap()
            .invocation_count,
        v1_before + 100
    );
    assert_eq!(
        s.get_version("counted", 0)
            .await
            .unwrap()
            .unwrap()
            .invocation_count,
        latest_before + 3
    );
    // A configuration write from a stale read keeps the counters.
    let mut stale = f.clone();
    stale.timeout = 99;
    s.update_function(&stale, &snapshot(&stale, 0))
        .await
        .unwrap();
    let got = s.get_function_by_id("counted").await.unwrap().unwrap();
    assert_eq!(
        (got.timeout, got.total_invocations),
        (99, f.total_invocations + 103)
    );
    assert_eq!(
        s.get_version("counted", 0)
            .await
            .unwrap()
            .unwrap()
            .invocation_count,
        latest_before + 3
    );
    // Unknown functions are ignored, not errors.
    s.record_invocations("gone", 1, 1, at(0)).await.unwrap();
}

fn queued(id: &str, function: &str, owner: &str, created: Timestamp) -> AsyncInvocation {
    let mut a = AsyncInvocation::new(id, function, "$LATEST", owner, "e30=", "application/json");
    a.next_attempt_at = created;
    a.created_at = created;
    a.updated_at = created;
    a
}

fn attempt(claimed: Claimed) -> AsyncInvocation {
    match claimed {
        Claimed::Attempt(i) => i,
        other => panic!("expected an attempt, got {other:?}"),
    }
}

fn ok_result() -> InvocationResult {
    InvocationResult {
        success: true,
        ..Default::default()
    }
}

fn failed_result() -> InvocationResult {
    InvocationResult {
        success: false,
        error_type: Some("RuntimeError".into()),
        ..Default::default()
    }
}

async fn async_invocations_are_claimed_once_and_reclaimed_after_their_lease(ctx: Ctx) {
    let s = ctx.store.clone();
    let t0 = at(1_900_000_000_000_000);
    let secs = |n: i64| t0 + chrono::Duration::seconds(n);
    for i in 0..6 {
        let due = if i < 5 { t0 } else { secs(60) };
        let mut a = queued(&format!("req-{i}"), "f", "alice", t0);
        a.next_attempt_at = due;
        s.enqueue_invocation(&a).await.unwrap();
    }
    let dup = AsyncInvocation::new("req-0", "f", "$LATEST", "alice", "", "application/json");
    conflict(s.enqueue_invocation(&dup).await);

    // Two concurrent claimers share the five due ones without overlap.
    let (a, b) = tokio::join!(
        s.claim_invocations(secs(1), secs(31), 3),
        s.claim_invocations(secs(1), secs(31), 3)
    );
    let claimed: Vec<AsyncInvocation> = a
        .unwrap()
        .into_iter()
        .chain(b.unwrap())
        .map(attempt)
        .collect();
    let mut ids: Vec<String> = claimed.iter().map(|i| i.request_id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["req-0", "req-1", "req-2", "req-3", "req-4"]);
    assert!(claimed.iter().all(|i| i.status == AsyncStatus::Running
        && i.attempts == 1
        && i.lease_until == Some(secs(31))));
    let tokens: BTreeSet<&str> = claimed
        .iter()
        .filter_map(|i| i.lease_token.as_deref())
        .collect();
    assert_eq!(tokens.len(), 5, "one fresh token per claim");
    assert!(
        s.claim_invocations(secs(2), secs(32), 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing due while leased"
    );

    // One finishes; the others' worker "dies": after the lease they come back.
    let mut done = claimed
        .iter()
        .find(|i| i.request_id == "req-0")
        .unwrap()
        .clone();
    let token = done.lease_token.clone().unwrap();
    // A renewal keeps it leased past the original lease.
    assert!(s
        .renew_invocation_lease("req-0", &token, secs(100))
        .await
        .unwrap());
    assert!(!s
        .renew_invocation_lease("req-0", "other", secs(100))
        .await
        .unwrap());
    done.finish_attempt(ok_result(), Some("3".into()));
    assert!(s.record_attempt(&done, &token, None).await.unwrap());
    let again = s.claim_invocations(secs(40), secs(70), 10).await.unwrap();
    let again: Vec<AsyncInvocation> = again.into_iter().map(attempt).collect();
    let mut ids: Vec<&str> = again.iter().map(|i| i.request_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["req-1", "req-2", "req-3", "req-4"]);
    assert!(again.iter().all(|i| i.attempts == 2));
    // The delayed one becomes due at its time.
    let later = s.claim_invocations(secs(61), secs(91), 10).await.unwrap();
    assert_eq!(
        later
            .iter()
            .map(|c| c.invocation().request_id.as_str())
            .collect::<Vec<_>>(),
        ["req-5"]
    );

    let got = s.get_invocation("req-0").await.unwrap().unwrap();
    assert_eq!(got, done);
    assert_eq!(got.lease_token, None);
    assert_eq!(got.result.as_ref().map(|r| r.success), Some(true));
    assert_eq!(s.get_invocation("nope").await.unwrap(), None);
}

async fn a_stale_attempt_cannot_overwrite_a_newer_claim(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let t0 = at(1_900_000_000_000_000);
    let secs = |n: i64| t0 + chrono::Duration::seconds(n);
    s.enqueue_invocation(&queued("slow", "f", "alice", t0))
        .await
        .unwrap();
    let first = attempt(
        s.claim_invocations(secs(1), secs(5), 1)
            .await
            .unwrap()
            .remove(0),
    );
    // The first worker outlives its lease; a second claims the invocation.
    let second = attempt(
        s.claim_invocations(secs(6), secs(30), 1)
            .await
            .unwrap()
            .remove(0),
    );
    assert_eq!((first.attempts, second.attempts), (1, 2));
    assert_ne!(first.lease_token, second.lease_token);

    // The first worker's late outcome and renewal are refused…
    let mut stale = first.clone();
    stale.finish_attempt(ok_result(), Some("1".into()));
    assert!(!s
        .record_attempt(&stale, first.lease_token.as_deref().unwrap(), None)
        .await
        .unwrap());
    assert!(!s
        .renew_invocation_lease("slow", first.lease_token.as_deref().unwrap(), secs(99))
        .await
        .unwrap());
    let stored = s.get_invocation("slow").await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.attempts, stored.lease_until),
        (AsyncStatus::Running, 2, Some(secs(30)))
    );
    // …and the second's is recorded.
    let mut current = second.clone();
    current.finish_attempt(failed_result(), None);
    assert!(s
        .record_attempt(&current, second.lease_token.as_deref().unwrap(), None)
        .await
        .unwrap());
    // A token is good for one outcome only.
    assert!(!s
        .record_attempt(&current, second.lease_token.as_deref().unwrap(), None)
        .await
        .unwrap());
    assert_eq!(s.get_invocation("slow").await.unwrap().unwrap(), current);

    // A throttled attempt is put back uncounted.
    let third = attempt(
        s.claim_invocations(secs(60), secs(90), 1)
            .await
            .unwrap()
            .remove(0),
    );
    assert_eq!(third.attempts, 3);
    let mut throttled = third.clone();
    throttled.requeue_throttled(Duration::from_millis(250));
    assert!(s
        .record_attempt(&throttled, third.lease_token.as_deref().unwrap(), None)
        .await
        .unwrap());
    let stored = s.get_invocation("slow").await.unwrap().unwrap();
    assert_eq!((stored.status, stored.attempts), (AsyncStatus::Queued, 2));
}

async fn an_exhausted_invocation_is_never_run_again(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let t0 = at(1_900_000_000_000_000);
    let secs = |n: i64| t0 + chrono::Duration::seconds(n);
    let mut last = queued("last", "f", "alice", t0);
    last.max_attempts = 2;
    s.enqueue_invocation(&last).await.unwrap();
    let one = attempt(
        s.claim_invocations(secs(1), secs(5), 1)
            .await
            .unwrap()
            .remove(0),
    );
    let mut failed = one.clone();
    failed.finish_attempt(failed_result(), None);
    assert!(s
        .record_attempt(&failed, one.lease_token.as_deref().unwrap(), None)
        .await
        .unwrap());
    let two = attempt(
        s.claim_invocations(secs(10), secs(15), 1)
            .await
            .unwrap()
            .remove(0),
    );
    assert_eq!(two.attempts, 2);
    // Its worker dies during the last attempt: the claim after the lease
    // hands it back as exhausted, attempts unchanged, under a new token.
    let mut claims = s.claim_invocations(secs(20), secs(50), 10).await.unwrap();
    assert_eq!(claims.len(), 1);
    let Claimed::Exhausted(mut lost) = claims.remove(0) else {
        panic!("the last attempt must not run again")
    };
    assert_eq!((lost.attempts, lost.status), (2, AsyncStatus::Running));
    assert_ne!(lost.lease_token, two.lease_token);
    let token = lost.lease_token.clone().unwrap();
    lost.fail_lost_attempt();
    assert!(s.record_attempt(&lost, &token, None).await.unwrap());
    let stored = s.get_invocation("last").await.unwrap().unwrap();
    assert_eq!((stored.status, stored.attempts), (AsyncStatus::Failed, 2));
    assert!(s
        .claim_invocations(secs(100), secs(130), 10)
        .await
        .unwrap()
        .is_empty());
}

async fn dead_letters_are_queued_with_the_failure_once(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let t0 = at(1_900_000_000_000_000);
    let secs = |n: i64| t0 + chrono::Duration::seconds(n);
    let mut inv = queued("boom", "f", "alice", t0);
    inv.max_attempts = 1;
    s.enqueue_invocation(&inv).await.unwrap();
    let claimed = attempt(
        s.claim_invocations(secs(1), secs(5), 1)
            .await
            .unwrap()
            .remove(0),
    );
    let token = claimed.lease_token.clone().unwrap();
    let mut failed = claimed.clone();
    failed.finish_attempt(failed_result(), Some("$LATEST".into()));
    assert_eq!(failed.status, AsyncStatus::Failed);
    let target: hotswap_domain::DeadLetterTarget = "dlq".parse().unwrap();
    let letter = failed.dead_letter(&target);
    failed.dead_letter_request_id = Some(letter.request_id.clone());

    // A stale token writes neither the outcome nor the dead letter.
    assert!(!s
        .record_attempt(&failed, "stale", Some(&letter))
        .await
        .unwrap());
    assert_eq!(s.get_invocation(&letter.request_id).await.unwrap(), None);

    assert!(s
        .record_attempt(&failed, &token, Some(&letter))
        .await
        .unwrap());
    let stored = s.get_invocation("boom").await.unwrap().unwrap();
    assert_eq!(stored.status, AsyncStatus::Failed);
    assert_eq!(stored.dead_letter_request_id.as_deref(), Some("boom-dlq"));
    let queued_letter = s.get_invocation("boom-dlq").await.unwrap().unwrap();
    assert_eq!(queued_letter, letter);
    assert_eq!(queued_letter.dead_letter_of.as_deref(), Some("boom"));

    // Queueing a dead letter whose id exists (a second delivery) keeps the
    // one stored and still records the outcome.
    let mut other = queued("boom-again", "f", "alice", t0);
    other.max_attempts = 1;
    s.enqueue_invocation(&other).await.unwrap();
    let claimed = attempt(
        s.claim_invocations(secs(2), secs(30), 10)
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.invocation().request_id == "boom-again")
            .unwrap(),
    );
    let mut failed_again = claimed.clone();
    failed_again.finish_attempt(failed_result(), None);
    let mut duplicate = letter.clone();
    duplicate.payload = "changed".into();
    assert!(s
        .record_attempt(
            &failed_again,
            claimed.lease_token.as_deref().unwrap(),
            Some(&duplicate)
        )
        .await
        .unwrap());
    assert_eq!(
        s.get_invocation("boom-again")
            .await
            .unwrap()
            .unwrap()
            .status,
        AsyncStatus::Failed
    );
    assert_eq!(
        s.get_invocation("boom-dlq").await.unwrap().unwrap().payload,
        letter.payload
    );
}

async fn invocations_list_newest_first_by_function_owner_and_status(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let t0 = at(1_900_000_000_000_000);
    let secs = |n: i64| t0 + chrono::Duration::seconds(n);
    for i in 0..5 {
        s.enqueue_invocation(&queued(&format!("a-{i}"), "f", "alice", secs(i)))
            .await
            .unwrap();
    }
    // Same creation time: ordered by request id.
    s.enqueue_invocation(&queued("a-5b", "f", "alice", secs(4)))
        .await
        .unwrap();
    s.enqueue_invocation(&queued("other-fn", "g", "alice", secs(1)))
        .await
        .unwrap();
    s.enqueue_invocation(&queued("other-owner", "f", "bob", secs(1)))
        .await
        .unwrap();
    // One fails.
    let mut claimed = s.claim_invocations(secs(10), secs(20), 1).await.unwrap();
    let mut failed = attempt(claimed.remove(0));
    let token = failed.lease_token.clone().unwrap();
    failed.attempts = failed.max_attempts;
    failed.finish_attempt(failed_result(), None);
    assert!(s.record_attempt(&failed, &token, None).await.unwrap());

    let filter = |status, after: Option<&str>| hotswap_store::InvocationFilter {
        function_name: "f".into(),
        owner_id: "alice".into(),
        function_id: None,
        status,
        limit: 4,
        after: after.map(|t| t.parse().unwrap()),
    };
    let ids = |p: &hotswap_store::Page<AsyncInvocation>| -> Vec<String> {
        p.items.iter().map(|i| i.request_id.clone()).collect()
    };
    let first = s.list_invocations(&filter(None, None)).await.unwrap();
    assert_eq!(ids(&first), ["a-5b", "a-4", "a-3", "a-2"]);
    let token = first.next_token.clone().expect("a second page");
    let second = s
        .list_invocations(&filter(None, Some(&token)))
        .await
        .unwrap();
    assert_eq!(ids(&second), ["a-1", failed.request_id.as_str()]);
    assert_eq!(second.next_token, None);
    let failures = s
        .list_invocations(&filter(Some(AsyncStatus::Failed), None))
        .await
        .unwrap();
    assert_eq!(ids(&failures), [failed.request_id.clone()]);
    assert_eq!(failures.items[0].status, AsyncStatus::Failed);
    assert!("nonsense"
        .parse::<hotswap_store::InvocationCursor>()
        .is_err());
    assert!("12.".parse::<hotswap_store::InvocationCursor>().is_err());

    // One queued for an earlier function of the same name (another id) is
    // not the new function's; those queued before ids existed are.
    let mut earlier = queued("earlier", "f", "alice", secs(5));
    earlier.function_id = Some("old-id".into());
    s.enqueue_invocation(&earlier).await.unwrap();
    let mut current = queued("current", "f", "alice", secs(6));
    current.function_id = Some("new-id".into());
    s.enqueue_invocation(&current).await.unwrap();
    let mine = s
        .list_invocations(&hotswap_store::InvocationFilter {
            function_id: Some("new-id".into()),
            limit: 100,
            ..filter(None, None)
        })
        .await
        .unwrap();
    assert_eq!(
        ids(&mine),
        [
            "current",
            "a-5b",
            "a-4",
            "a-3",
            "a-2",
            "a-1",
            failed.request_id.as_str()
        ]
    );
    let got = s.get_invocation("current").await.unwrap().unwrap();
    assert_eq!(
        got.function_id.as_deref(),
        Some("new-id"),
        "the id round-trips"
    );
}

async fn layer_versions_number_per_name_and_belong_to_one_owner(ctx: Ctx) {
    use hotswap_domain::LayerVersion;
    let s = ctx.store.as_ref();
    let layer = |name: &str, owner: &str, sha: &str| LayerVersion {
        layer_name: name.into(),
        version: 0,
        description: Some("deps".into()),
        code_sha256: sha.repeat(32),
        code_size: 10,
        code_location: format!("layers/{name}/{}/layer.zip", sha.repeat(32)),
        owner_id: owner.into(),
        created_at: at(1_700_000_000_000_001),
    };
    let v1 = s
        .publish_layer_version(&layer("deps", "alice", "aa"))
        .await
        .unwrap();
    let v2 = s
        .publish_layer_version(&layer("deps", "alice", "bb"))
        .await
        .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    s.publish_layer_version(&layer("utils", "alice", "cc"))
        .await
        .unwrap();
    conflict(s.publish_layer_version(&layer("deps", "bob", "dd")).await);
    assert_eq!(
        s.get_layer_version("deps", None).await.unwrap(),
        Some(v2.clone())
    );
    assert_eq!(
        s.get_layer_version("deps", Some(1)).await.unwrap(),
        Some(v1.clone())
    );
    assert_eq!(
        s.list_layer_versions("deps").await.unwrap(),
        vec![v1, v2.clone()]
    );
    let newest: Vec<(String, u32)> = s
        .list_layers()
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.layer_name, l.version))
        .collect();
    assert_eq!(newest, [("deps".to_owned(), 2), ("utils".to_owned(), 1)]);
    assert!(s.delete_layer_version("deps", 1).await.unwrap());
    assert!(!s.delete_layer_version("deps", 1).await.unwrap());
    assert_eq!(
        s.publish_layer_version(&layer("deps", "alice", "ee"))
            .await
            .unwrap()
            .version,
        3
    );
    // Deleting the newest version does not free its number: a function
    // pinned to deps:3 can never get other content under that name.
    assert!(s.delete_layer_version("deps", 3).await.unwrap());
    assert_eq!(
        s.publish_layer_version(&layer("deps", "alice", "ff"))
            .await
            .unwrap()
            .version,
        4
    );
    // Nor does deleting every version; the name stays its owner's.
    for v in [2, 4] {
        assert!(s.delete_layer_version("deps", v).await.unwrap());
    }
    assert_eq!(s.list_layer_versions("deps").await.unwrap(), vec![]);
    conflict(s.publish_layer_version(&layer("deps", "bob", "ab")).await);
    assert_eq!(
        s.publish_layer_version(&layer("deps", "alice", "ab"))
            .await
            .unwrap()
            .version,
        5
    );
    // Concurrent publishers get distinct numbers.
    let (c1, c2) = (layer("utils", "alice", "c1"), layer("utils", "alice", "c2"));
    let (a, b) = tokio::join!(s.publish_layer_version(&c1), s.publish_layer_version(&c2));
    let mut got = [a.unwrap().version, b.unwrap().version];
    got.sort();
    assert_eq!(got, [2, 3]);
    assert_eq!(s.get_layer_version("nope", None).await.unwrap(), None);
}

async fn version_round_trip_and_status(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let f = create(s, "ver", "o").await;
    let n = s.allocate_version_number("ver").await.unwrap();
    assert_eq!(n, 1);
    let mut v = snapshot(&f, n);
    v.invocation_count = 77;
    v.status = VersionStatus::Deprecated;
    v.description = None;
    v.environment.insert("EXTRA".to_owned(), "x".to_owned());
    s.insert_version(&v).await.unwrap();

    let got = s.get_version("ver", 1).await.unwrap().expect("stored");
    assert_eq!(got.function_name, "ver");
    assert_eq!(got.version, 1);
    assert_eq!(got.code_sha256, v.code_sha256);
    assert_eq!(got.code_size, 1001);
    assert_eq!(got.code_location, v.code_location);
    assert_eq!(got.runtime, Runtime::Python311);
    assert_eq!(got.environment["EXTRA"], "x");
    assert_eq!(got.layers, ["numpy", "pandas"]);
    assert_eq!(got.created_at, v.created_at);
    assert_eq!(got.created_by, "alice");
    assert_eq!(got.description, None);
    assert_eq!(got.invocation_count, 77);
    assert_eq!(got.status, VersionStatus::Deprecated);
    assert_eq!(got, v);
    assert_eq!(
        s.get_function_by_id("ver")
            .await
            .unwrap()
            .unwrap()
            .published_version
            .as_deref(),
        Some("v1")
    );

    let archived = s
        .set_version_status("ver", 1, VersionStatus::Archived)
        .await
        .unwrap();
    v.status = VersionStatus::Archived;
    assert_eq!(archived, v);
    assert_eq!(s.get_version("ver", 1).await.unwrap(), Some(v.clone()));

    let (kind, id) = not_found(s.set_version_status("ver", 9, VersionStatus::Active).await);
    assert_eq!((kind, id.as_str()), ("version", "ver:9"));
    assert_eq!(s.get_version("ver", 9).await.unwrap(), None);
    assert_eq!(s.get_version("nope", 0).await.unwrap(), None);

    let message = conflict(s.insert_version(&v).await);
    assert_eq!(message, "version 1 of function 'ver' already exists");
    conflict(s.insert_version(&snapshot(&f, 0)).await);
    let (kind, id) = not_found(
        s.insert_version(&snapshot(&function("ghost", "o"), 1))
            .await,
    );
    assert_eq!((kind, id.as_str()), ("function", "ghost"));

    let versions = s.list_versions("ver").await.unwrap();
    assert_eq!(versions, vec![snapshot(&f, 0), v]);
    assert!(s.list_versions("nope").await.unwrap().is_empty());
}

async fn version_numbers_are_never_reused(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let f = create_with_versions(s, "seq", 3).await;
    let listed: Vec<u32> = s
        .list_versions("seq")
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(listed, [0, 1, 2, 3]);
    assert_eq!(published(s, "seq").await.as_deref(), Some("v3"));

    let deleted = s.delete_version("seq", 3).await.unwrap();
    assert_eq!(deleted, snapshot(&f, 3));
    assert_eq!(s.get_version("seq", 3).await.unwrap(), None);
    assert_eq!(s.allocate_version_number("seq").await.unwrap(), 4);
    assert_eq!(s.allocate_version_number("seq").await.unwrap(), 5);

    // Inserting an older number does not move published_version back, and a
    // number inserted beyond the counter moves the counter past it.
    s.insert_version(&snapshot(&f, 3)).await.unwrap();
    assert_eq!(published(s, "seq").await.as_deref(), Some("v3"));
    s.insert_version(&snapshot(&f, 10)).await.unwrap();
    assert_eq!(published(s, "seq").await.as_deref(), Some("v10"));
    s.insert_version(&snapshot(&f, 4)).await.unwrap();
    assert_eq!(published(s, "seq").await.as_deref(), Some("v10"));
    assert_eq!(s.allocate_version_number("seq").await.unwrap(), 11);

    let (kind, id) = not_found(s.allocate_version_number("nope").await);
    assert_eq!((kind, id.as_str()), ("function", "nope"));
}

async fn concurrent_allocations_are_distinct(ctx: Ctx) {
    create(ctx.store.as_ref(), "race", "o").await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&ctx.store);
            tokio::spawn(async move { store.allocate_version_number("race").await })
        })
        .collect();
    let mut numbers = BTreeSet::new();
    for task in tasks {
        let n = task.await.expect("task").expect("allocate");
        assert!(numbers.insert(n), "number {n} handed out twice");
    }
    assert_eq!(numbers, (1..=20).collect::<BTreeSet<u32>>());
    assert_eq!(ctx.store.allocate_version_number("race").await.unwrap(), 21);
}

async fn concurrent_publishes_keep_the_newest(ctx: Ctx) {
    let f = create(ctx.store.as_ref(), "pub", "o").await;
    let mut numbers = Vec::new();
    for _ in 0..20 {
        numbers.push(ctx.store.allocate_version_number("pub").await.unwrap());
    }
    // Published in any order, concurrently: published_version ends at the
    // highest number (each insert's read-compare-write is serialised).
    let tasks: Vec<_> = numbers
        .iter()
        .rev()
        .map(|&n| {
            let store = Arc::clone(&ctx.store);
            let version = snapshot(&f, n);
            tokio::spawn(async move { store.insert_version(&version).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("insert version");
    }
    assert_eq!(
        published(ctx.store.as_ref(), "pub").await.as_deref(),
        Some("v20")
    );
    assert_eq!(ctx.store.list_versions("pub").await.unwrap().len(), 21);
}

async fn delete_version_refused_while_aliased(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let f = create_with_versions(s, "guard", 3).await;
    s.create_alias(&alias("guard", "prod", 1)).await.unwrap();
    s.create_alias(&alias("guard", "staging", 1)).await.unwrap();
    let mut canary = alias("guard", "canary", 2);
    canary.set_weighted_routing(2, 3, 10.0);
    s.create_alias(&canary).await.unwrap();

    let message = conflict(s.delete_version("guard", 1).await);
    assert_eq!(
        message,
        "version 1 is referenced by alias(es) prod, staging"
    );
    // Referenced only by the routing config of `canary`.
    let message = conflict(s.delete_version("guard", 3).await);
    assert_eq!(message, "version 3 is referenced by alias(es) canary");
    assert_eq!(
        s.get_version("guard", 3).await.unwrap(),
        Some(snapshot(&f, 3))
    );

    // Once the alias moves on, the version can go.
    let mut moved = canary.clone();
    moved.update_version(2);
    s.update_alias(&moved).await.unwrap();
    assert_eq!(s.delete_version("guard", 3).await.unwrap(), snapshot(&f, 3));

    s.delete_alias("guard", "prod").await.unwrap();
    let message = conflict(s.delete_version("guard", 1).await);
    assert_eq!(message, "version 1 is referenced by alias(es) staging");
    let mut staging = alias("guard", "staging", 2);
    staging.updated_at = at(1_800_000_000_000_000);
    s.update_alias(&staging).await.unwrap();
    assert_eq!(s.delete_version("guard", 1).await.unwrap(), snapshot(&f, 1));

    let listed: Vec<u32> = s
        .list_versions("guard")
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(listed, [0, 2]);

    // $LATEST is never deleted this way; unknown versions are NotFound.
    let message = conflict(s.delete_version("guard", 0).await);
    assert!(message.contains("$LATEST"), "{message}");
    assert!(s.get_version("guard", 0).await.unwrap().is_some());
    let (kind, id) = not_found(s.delete_version("guard", 3).await);
    assert_eq!((kind, id.as_str()), ("version", "guard:3"));
    let (kind, _) = not_found(s.delete_version("nope", 1).await);
    assert_eq!(kind, "function");
}

async fn delete_version_refused_while_active_and_invoked(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let f = create(s, "busy", "o").await;
    let mut invoked = snapshot(&f, 1);
    invoked.invocation_count = 5;
    s.insert_version(&invoked).await.unwrap();
    let quiet = snapshot(&f, 2);
    s.insert_version(&quiet).await.unwrap();

    let message = conflict(s.delete_version("busy", 1).await);
    assert_eq!(
        message,
        "version 1 is Active and has served invocations; deprecate or archive it first"
    );
    assert_eq!(
        s.get_version("busy", 1).await.unwrap(),
        Some(invoked.clone())
    );

    // Active but never invoked: allowed.
    assert_eq!(s.delete_version("busy", 2).await.unwrap(), quiet);

    let deprecated = s
        .set_version_status("busy", 1, VersionStatus::Deprecated)
        .await
        .unwrap();
    assert_eq!(s.delete_version("busy", 1).await.unwrap(), deprecated);
    assert_eq!(s.get_version("busy", 1).await.unwrap(), None);
}

async fn alias_round_trip(ctx: Ctx) {
    let s = ctx.store.as_ref();
    create_with_versions(s, "al", 3).await;
    let mut a = alias("al", "live", 2);
    a.routing_config = BTreeMap::from([(2, 66.6), (3, 33.4)]);
    s.create_alias(&a).await.unwrap();
    let plain = alias("al", "a-plain", 0);
    s.create_alias(&plain).await.unwrap();

    let got = s.get_alias("al", "live").await.unwrap().expect("stored");
    assert_eq!(got.function_name, "al");
    assert_eq!(got.alias_name, "live");
    assert_eq!(got.version, 2);
    assert_eq!(got.routing_config, BTreeMap::from([(2, 66.6), (3, 33.4)]));
    assert_eq!(got.description.as_deref(), Some("live traffic"));
    assert_eq!(got.created_at, a.created_at);
    assert_eq!(got.updated_at, a.updated_at);
    assert_eq!(got, a);
    assert_eq!(
        s.list_aliases("al").await.unwrap(),
        vec![plain.clone(), a.clone()]
    );

    let message = conflict(s.create_alias(&a).await);
    assert_eq!(message, "alias 'live' of function 'al' already exists");

    // Update replaces version, routing, description and updated_at, and
    // keeps created_at.
    let mut updated = a.clone();
    updated.version = 3;
    updated.routing_config.clear();
    updated.description = None;
    updated.updated_at = at(1_800_000_000_000_123);
    updated.created_at = at(1); // ignored
    s.update_alias(&updated).await.unwrap();
    updated.created_at = a.created_at;
    assert_eq!(s.get_alias("al", "live").await.unwrap(), Some(updated));

    let (kind, id) = not_found(s.update_alias(&alias("al", "ghost", 1)).await);
    assert_eq!((kind, id.as_str()), ("alias", "al:ghost"));
    assert_eq!(s.get_alias("al", "ghost").await.unwrap(), None);

    assert!(s.delete_alias("al", "live").await.unwrap());
    assert!(!s.delete_alias("al", "live").await.unwrap());
    assert_eq!(s.get_alias("al", "live").await.unwrap(), None);
    assert_eq!(s.list_aliases("al").await.unwrap(), vec![plain]);
    assert!(s.list_aliases("nope").await.unwrap().is_empty());
}

async fn alias_refused_for_missing_versions(ctx: Ctx) {
    let s = ctx.store.as_ref();
    create_with_versions(s, "miss", 2).await;

    let message = conflict(s.create_alias(&alias("miss", "prod", 7)).await);
    assert_eq!(
        message,
        "alias 'prod' routes to version 7, which does not exist"
    );
    let mut routed = alias("miss", "canary", 1);
    routed.routing_config = BTreeMap::from([(1, 80.0), (8, 10.0), (9, 10.0)]);
    let message = conflict(s.create_alias(&routed).await);
    assert_eq!(
        message,
        "alias 'canary' routes to versions 8, 9, which do not exist"
    );
    assert!(s.list_aliases("miss").await.unwrap().is_empty());

    // A deleted version is as missing as one never published.
    s.delete_version("miss", 2).await.unwrap();
    conflict(s.create_alias(&alias("miss", "prod", 2)).await);

    let good = alias("miss", "prod", 1);
    s.create_alias(&good).await.unwrap();
    let mut bad = good.clone();
    bad.set_weighted_routing(1, 2, 5.0);
    let message = conflict(s.update_alias(&bad).await);
    assert_eq!(
        message,
        "alias 'prod' routes to version 2, which does not exist"
    );
    // The refused update left the alias as it was.
    assert_eq!(s.get_alias("miss", "prod").await.unwrap(), Some(good));

    let (kind, id) = not_found(s.create_alias(&alias("nope", "prod", 1)).await);
    assert_eq!((kind, id.as_str()), ("function", "nope"));
}

async fn trigger_round_trip(ctx: Ctx) {
    let s = ctx.store.as_ref();
    create(s, "trg", "o").await;
    create(s, "trg2", "o").await;
    let mut http = trigger_of(
        "trg",
        TriggerType::Http,
        TriggerConfig {
            http_path: Some("/hello/{name}".to_owned()),
            http_methods: Some(vec!["GET".to_owned(), "POST".to_owned()]),
            cors_enabled: Some(true),
            ..Default::default()
        },
    );
    http.target_version = "prod".to_owned();
    http.created_at = at(1_700_000_000_000_001);
    http.last_executed_at = Some(at(1_700_000_000_500_002));
    http.execution_count = 1 << 33;
    http.failure_count = 3;
    let mut cron = trigger_of(
        "trg2",
        TriggerType::Scheduled,
        TriggerConfig {
            schedule_expression: Some("cron(0 12 * * ? *)".to_owned()),
            timezone: Some("Europe/Paris".to_owned()),
            ..Default::default()
        },
    );
    cron.is_enabled = false;
    cron.created_at = at(1_700_000_000_000_000);
    let mut queue = trigger_of(
        "trg",
        TriggerType::Queue,
        TriggerConfig {
            queue_name: Some("jobs".to_owned()),
            batch_size: Some(25),
            visibility_timeout: Some(120),
            ..Default::default()
        },
    );
    queue.created_at = at(1_700_000_000_000_002);
    for t in [&http, &cron, &queue] {
        s.create_trigger(t).await.unwrap();
    }

    let got = s
        .get_trigger(&http.trigger_id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(got.function_name, "trg");
    assert_eq!(got.target_version, "prod");
    assert_eq!(got.trigger_type, TriggerType::Http);
    assert!(got.is_enabled);
    assert_eq!(got.config, http.config);
    assert_eq!(got.created_at, http.created_at);
    assert_eq!(got.last_executed_at, http.last_executed_at);
    assert_eq!((got.execution_count, got.failure_count), (1 << 33, 3));
    assert_eq!(got, http);
    assert_eq!(
        s.get_trigger(&cron.trigger_id).await.unwrap(),
        Some(cron.clone())
    );
    assert!(!cron.is_enabled);

    // Ordered by creation time.
    let all = s.list_triggers(None).await.unwrap();
    assert_eq!(all, vec![cron.clone(), http.clone(), queue.clone()]);
    let of_trg = s.list_triggers(Some("trg")).await.unwrap();
    assert_eq!(of_trg, vec![http.clone(), queue.clone()]);
    assert!(s.list_triggers(Some("nope")).await.unwrap().is_empty());

    let mut changed = http.clone();
    changed.is_enabled = false;
    changed.execution_count += 1;
    changed.last_executed_at = None;
    changed.config.cors_enabled = None;
    s.update_trigger(&changed).await.unwrap();
    // Run counters belong to the store: an update keeps them.
    let mut expected = changed.clone();
    expected.execution_count = http.execution_count;
    expected.last_executed_at = http.last_executed_at;
    assert_eq!(
        s.get_trigger(&http.trigger_id).await.unwrap(),
        Some(expected)
    );

    let message = conflict(s.create_trigger(&http).await);
    assert_eq!(
        message,
        format!("trigger '{}' already exists", http.trigger_id)
    );
    let orphan = trigger_of("nope", TriggerType::Http, TriggerConfig::default());
    let (kind, id) = not_found(s.create_trigger(&orphan).await);
    assert_eq!((kind, id.as_str()), ("function", "nope"));
    let (kind, _) = not_found(s.update_trigger(&orphan).await);
    assert_eq!(kind, "trigger");

    assert!(s.delete_trigger(&queue.trigger_id).await.unwrap());
    assert!(!s.delete_trigger(&queue.trigger_id).await.unwrap());
    assert_eq!(s.get_trigger(&queue.trigger_id).await.unwrap(), None);
}

async fn runner_round_trip(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let mut r = RunnerNode::new("node-b", "host-b.internal");
    r.port = 65535;
    r.health.cpu_usage = 12.345;
    r.health.memory_usage = 1.0 / 7.0;
    r.health.active_containers = 2;
    r.health.is_healthy = false;
    r.resources.total_memory_mb = 1 << 36;
    r.resources.cpu_usage = 99.99;
    r.active_containers = BTreeMap::from([
        ("hello:1".to_owned(), "inst-1".to_owned()),
        ("hello:$LATEST".to_owned(), "inst-2".to_owned()),
    ]);
    r.last_heartbeat = at(1_700_000_000_999_999);
    r.started_at = at(1_699_999_999_000_001);
    r.metrics.total_invocations = 1 << 50;
    r.metrics.avg_invocation_duration = 12.5;
    r.metrics.avg_cold_start_duration = 0.1 + 0.7;
    r.runtimes = vec![Runtime::Python311, Runtime::Node20, Runtime::Provided];
    r.sandbox = Some("namespaces+cgroup-v2".to_owned());
    s.upsert_runner(&r).await.unwrap();
    let a = RunnerNode::new("node-a", "host-a");
    s.upsert_runner(&a).await.unwrap();

    let got = s.get_runner("node-b").await.unwrap().expect("stored");
    assert_eq!(got.hostname, "host-b.internal");
    assert_eq!(got.port, 65535);
    assert_eq!(got.health, r.health);
    assert_eq!(got.resources.total_memory_mb, 1 << 36);
    assert_eq!(got.active_containers, r.active_containers);
    assert_eq!(got.last_heartbeat, r.last_heartbeat);
    assert_eq!(got.metrics.avg_cold_start_duration, 0.1 + 0.7);
    assert_eq!(got.runtimes, r.runtimes);
    assert_eq!(got.sandbox, r.sandbox);
    assert_eq!(got, r);

    // Upsert replaces.
    let mut beat = r.clone();
    beat.last_heartbeat = at(1_700_000_010_000_000);
    beat.active_containers.clear();
    beat.sandbox = None;
    beat.health.is_healthy = true;
    s.upsert_runner(&beat).await.unwrap();
    assert_eq!(s.get_runner("node-b").await.unwrap(), Some(beat.clone()));
    assert_eq!(s.list_runners().await.unwrap(), vec![a.clone(), beat]);

    assert!(s.delete_runner("node-b").await.unwrap());
    assert!(!s.delete_runner("node-b").await.unwrap());
    assert_eq!(s.get_runner("node-b").await.unwrap(), None);
    assert_eq!(s.list_runners().await.unwrap(), vec![a]);
}

async fn deployment_round_trip(ctx: Ctx) {
    let s = ctx.store.as_ref();
    create_with_versions(s, "dep", 2).await;
    let mut d = deployment("dep", "prod", 1_700_000_000_000_001);
    d.progress = 100.0 / 3.0;
    d.current_phase = Some("canary 1/3".to_owned());
    d.metrics = Some(DeploymentMetrics {
        invocation_count: 1 << 35,
        error_count: 7,
        error_rate: 0.1 + 0.2,
        avg_duration: 12.75,
        p99_duration: 99.125,
        captured_at: at(1_700_000_000_333_333),
        success_rate: 99.7,
    });
    s.create_deployment(&d).await.unwrap();

    let got = s
        .get_deployment(&d.deployment_id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(got.function_name, "dep");
    assert_eq!(got.alias_name, "prod");
    assert_eq!((got.source_version, got.target_version), (Some(1), 2));
    assert_eq!(got.strategy, DeploymentStrategy::Canary);
    assert_eq!(got.config, d.config);
    assert_eq!(
        got.config.canary_increments,
        Some(vec![0.1 + 0.2, 50.0, 100.0])
    );
    assert_eq!(got.status, DeploymentStatus::Pending);
    assert_eq!(got.progress.to_bits(), (100.0f64 / 3.0).to_bits());
    assert_eq!(got.current_phase.as_deref(), Some("canary 1/3"));
    assert_eq!(got.started_at, d.started_at);
    assert_eq!(got.completed_at, None);
    assert_eq!(got.metrics, d.metrics);
    assert_eq!(got, d);

    // Every strategy and status survives.
    let mut done = d.clone();
    done.start("shifting").unwrap();
    done.mark_rolled_back("p99 over threshold");
    done.strategy = DeploymentStrategy::ABTesting;
    done.source_version = None;
    done.metrics = None;
    s.update_deployment(&done).await.unwrap();
    assert_eq!(
        s.get_deployment(&d.deployment_id).await.unwrap(),
        Some(done.clone())
    );
    assert_eq!(done.status, DeploymentStatus::RolledBack);

    let mut second = deployment("dep", "prod", 1_700_000_000_000_002);
    second.strategy = DeploymentStrategy::BlueGreen;
    second.config = DeploymentConfig {
        test_duration: Some(Duration::from_secs(60)),
        keep_blue: Some(true),
        ..Default::default()
    };
    s.create_deployment(&second).await.unwrap();
    let mut third = deployment("dep", "beta", 1_700_000_000_000_000);
    third.strategy = DeploymentStrategy::Rolling;
    third.config = DeploymentConfig {
        batch_size: Some(0.25),
        batch_duration: Some(Duration::from_secs(30)),
        ..Default::default()
    };
    s.create_deployment(&third).await.unwrap();

    // Newest first.
    assert_eq!(
        s.list_deployments("dep").await.unwrap(),
        vec![second, done, third]
    );
    assert!(s.list_deployments("nope").await.unwrap().is_empty());
    assert_eq!(s.get_deployment("nope").await.unwrap(), None);

    let message = conflict(s.create_deployment(&d).await);
    assert!(message.contains("already"), "{message}");
    let (kind, _) = not_found(s.update_deployment(&deployment("dep", "x", 0)).await);
    assert_eq!(kind, "deployment");
    let (kind, id) = not_found(s.create_deployment(&deployment("nope", "x", 0)).await);
    assert_eq!((kind, id.as_str()), ("function", "nope"));
}

async fn deployment_steps_move_the_alias_atomically_and_compare_revisions(ctx: Ctx) {
    let s = ctx.store.as_ref();
    create_with_versions(s, "step", 3).await;
    s.create_alias(&alias("step", "prod", 1)).await.unwrap();
    let mut d = deployment("step", "prod", 1_700_000_000_000_001);
    s.create_deployment(&d).await.unwrap();
    let mut other = deployment("step", "beta", 1_700_000_000_000_000);
    other.start("x").unwrap();
    s.create_deployment(&other).await.unwrap();
    assert_eq!(
        s.list_active_deployments()
            .await
            .unwrap()
            .iter()
            .map(|d| d.deployment_id.clone())
            .collect::<Vec<_>>(),
        vec![other.deployment_id.clone(), d.deployment_id.clone()],
        "oldest first"
    );

    // A step: alias split and deployment progress in one write.
    d.start("Canary 10%").unwrap();
    d.step = 0;
    d.step_started_at = Some(at(1_700_000_000_000_500));
    d.record(
        "Canary 10%",
        "10% to version 2",
        [(1, 90.0), (2, 10.0)].into(),
    );
    d.version_metrics.insert(
        2,
        DeploymentMetrics {
            invocation_count: 42,
            error_count: 1,
            error_rate: 100.0 / 42.0,
            avg_duration: 1.5,
            p99_duration: 9.25,
            captured_at: at(1_700_000_000_000_600),
            success_rate: 100.0 - 100.0 / 42.0,
        },
    );
    d.rolling_nodes = vec!["a".into(), "b".into()];
    let mut a = s.get_alias("step", "prod").await.unwrap().unwrap();
    a.set_weighted_routing(1, 2, 10.0);
    assert_eq!(s.apply_deployment(&d, Some(&a)).await.unwrap(), 1);
    d.revision = 1;
    let stored = s.get_deployment(&d.deployment_id).await.unwrap().unwrap();
    assert_eq!(stored, d, "timeline, metrics, step and revision round-trip");
    assert_eq!(
        s.get_alias("step", "prod")
            .await
            .unwrap()
            .unwrap()
            .routing_config,
        a.routing_config
    );

    // A stale writer loses and changes nothing, alias included.
    let mut stale = d.clone();
    stale.revision = 0;
    stale.mark_rolled_back("stale");
    let mut moved = a.clone();
    moved.update_version(3);
    let message = conflict(s.apply_deployment(&stale, Some(&moved)).await);
    assert!(message.contains("changed meanwhile"), "{message}");
    assert_eq!(
        s.get_alias("step", "prod").await.unwrap().unwrap().version,
        1
    );
    assert_eq!(
        s.get_deployment(&d.deployment_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        DeploymentStatus::InProgress
    );

    // The alias cannot be deleted from under its deployment.
    let message = conflict(s.delete_alias("step", "prod").await);
    assert!(message.contains("being moved by deployment"), "{message}");
    // An alias routed to a missing version is refused with the deployment unchanged.
    let mut bad = a.clone();
    bad.update_version(99);
    let message = conflict(s.apply_deployment(&d, Some(&bad)).await);
    assert!(message.contains("99"), "{message}");
    assert_eq!(
        s.get_deployment(&d.deployment_id)
            .await
            .unwrap()
            .unwrap()
            .revision,
        1
    );
    // Another alias cannot be moved by this deployment.
    let foreign = alias("step", "beta", 3);
    let message = conflict(s.apply_deployment(&d, Some(&foreign)).await);
    assert!(message.contains("does not own"), "{message}");

    // The end: not active any more.
    d.mark_completed();
    assert_eq!(s.apply_deployment(&d, None).await.unwrap(), 2);
    assert_eq!(s.list_active_deployments().await.unwrap().len(), 1);
    let (kind, _) = not_found(s.apply_deployment(&deployment("step", "x", 0), None).await);
    assert_eq!(kind, "deployment");
}

async fn one_active_deployment_per_alias(ctx: Ctx) {
    let s = ctx.store.as_ref();
    create_with_versions(s, "one", 2).await;
    let first = deployment("one", "prod", 1);
    s.create_deployment(&first).await.unwrap();

    let mut second = deployment("one", "prod", 2);
    let message = conflict(s.create_deployment(&second).await);
    assert_eq!(
        message,
        format!(
            "alias 'prod' of function 'one' already has an active deployment ({}); wait for it to finish or cancel it",
            first.deployment_id
        )
    );
    assert_eq!(s.get_deployment(&second.deployment_id).await.unwrap(), None);

    // InProgress counts as active too; other aliases are independent.
    let mut running = first.clone();
    running.start("step 1").unwrap();
    s.update_deployment(&running).await.unwrap();
    conflict(s.create_deployment(&second).await);
    let other_alias = deployment("one", "beta", 3);
    s.create_deployment(&other_alias).await.unwrap();

    // A finished one frees the alias.
    let mut finished = running.clone();
    finished.mark_completed();
    s.update_deployment(&finished).await.unwrap();
    s.create_deployment(&second).await.unwrap();

    // Reviving the old one while the new one runs is refused.
    let message = conflict(s.update_deployment(&running).await);
    assert!(
        message.contains("already has an active deployment"),
        "{message}"
    );
    assert_eq!(
        s.get_deployment(&first.deployment_id).await.unwrap(),
        Some(finished)
    );

    // Terminal deployments do not need the alias to be free.
    let mut imported = deployment("one", "prod", 4);
    imported.mark_failed("imported");
    s.create_deployment(&imported).await.unwrap();
    second.cancel(None).unwrap();
    s.update_deployment(&second).await.unwrap();
    assert_eq!(s.list_deployments("one").await.unwrap().len(), 4);
}

async fn concurrent_deployments_admit_one(ctx: Ctx) {
    create_with_versions(ctx.store.as_ref(), "rush", 2).await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = Arc::clone(&ctx.store);
            tokio::spawn(async move {
                store
                    .create_deployment(&deployment("rush", "prod", i))
                    .await
            })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => admitted += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(admitted, 1);
    assert_eq!(ctx.store.list_deployments("rush").await.unwrap().len(), 1);
}

fn api_token(hash: &str, id: &str, owner: &str, role: TokenRole) -> ApiToken {
    ApiToken {
        token_hash: hash.repeat(32),
        token_id: id.to_owned(),
        owner_id: owner.to_owned(),
        role,
        name: None,
        created_at: at(1_700_000_000_000_042),
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    }
}

async fn token_round_trip(ctx: Ctx) {
    let s = ctx.store.as_ref();
    assert!(!s.has_admin_token().await.unwrap());
    let mut user = api_token("ab", "tok_user", "tenant-1", TokenRole::Tenant);
    user.name = Some("laptop é".to_owned());
    user.expires_at = Some(at(4_000_000_000_000_001));
    s.insert_token(&user).await.unwrap();
    assert_eq!(
        s.find_token(&user.token_hash).await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(s.get_token("tok_user").await.unwrap(), Some(user.clone()));
    assert!(!s.has_admin_token().await.unwrap());

    let mut admin = api_token("cd", "tok_admin", "root", TokenRole::Admin);
    admin.created_at = at(1_700_000_000_000_043);
    s.insert_token(&admin).await.unwrap();
    assert!(s.has_admin_token().await.unwrap());
    assert_eq!(s.find_token(&admin.token_hash).await.unwrap(), Some(admin));
    assert_eq!(s.find_token(&"00".repeat(32)).await.unwrap(), None);
    assert_eq!(s.get_token("tok_nope").await.unwrap(), None);
    for role in [TokenRole::Metrics, TokenRole::Runner] {
        let t = api_token(&role.as_str()[..2], role.as_str(), "m", role);
        s.insert_token(&t).await.unwrap();
        assert_eq!(s.get_token(role.as_str()).await.unwrap(), Some(t));
    }

    let message = conflict(s.insert_token(&user).await);
    assert!(message.contains("already exists"), "{message}");
    assert!(
        !message.contains(&user.token_hash),
        "the hash stays out of messages"
    );
    // The id is unique too.
    let same_id = api_token("99", "tok_user", "tenant-2", TokenRole::Tenant);
    conflict(s.insert_token(&same_id).await);
}

async fn tokens_list_by_owner_revoke_and_touch(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let mut a1 = api_token("a1", "tok_a1", "alice", TokenRole::Tenant);
    let mut b1 = api_token("b1", "tok_b1", "bob", TokenRole::Tenant);
    let mut a2 = api_token("a2", "tok_a2", "alice", TokenRole::Tenant);
    a1.created_at = at(1_700_000_000_000_001);
    b1.created_at = at(1_700_000_000_000_002);
    a2.created_at = at(1_700_000_000_000_003);
    a2.expires_at = Some(at(1_700_000_000_000_004));
    for t in [&a2, &b1, &a1] {
        s.insert_token(t).await.unwrap();
    }
    let ids = |ts: Vec<ApiToken>| ts.into_iter().map(|t| t.token_id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_tokens(None).await.unwrap()),
        ["tok_a1", "tok_b1", "tok_a2"],
        "oldest first, expired ones included"
    );
    assert_eq!(
        ids(s.list_tokens(Some("alice")).await.unwrap()),
        ["tok_a1", "tok_a2"]
    );
    assert!(s.list_tokens(Some("carol")).await.unwrap().is_empty());

    // Touching moves last_used_at forward only.
    s.touch_token("tok_a1", at(1_700_000_000_000_500))
        .await
        .unwrap();
    s.touch_token("tok_a1", at(1_700_000_000_000_100))
        .await
        .unwrap();
    s.touch_token("tok_nope", at(1_700_000_000_000_100))
        .await
        .unwrap();
    a1.last_used_at = Some(at(1_700_000_000_000_500));
    assert_eq!(s.get_token("tok_a1").await.unwrap(), Some(a1.clone()));

    // Revoked: once, kept (so the secret cannot come back), never listed.
    let when = at(1_700_000_000_000_900);
    assert!(s.revoke_token("tok_a1", when).await.unwrap());
    assert!(!s.revoke_token("tok_a1", when).await.unwrap());
    assert!(!s.revoke_token("tok_nope", when).await.unwrap());
    a1.revoked_at = Some(when);
    assert_eq!(s.find_token(&a1.token_hash).await.unwrap(), Some(a1));
    assert_eq!(ids(s.list_tokens(Some("alice")).await.unwrap()), ["tok_a2"]);
    b1.revoked_at = None;
    assert_eq!(s.get_token("tok_b1").await.unwrap(), Some(b1));
}

async fn only_live_admin_tokens_count_as_admins(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let mut expired = api_token("e1", "tok_expired", "admin", TokenRole::Admin);
    expired.expires_at = Some(at(1_700_000_000_000_000));
    s.insert_token(&expired).await.unwrap();
    assert!(!s.has_admin_token().await.unwrap(), "an expired admin");
    let revoked = api_token("e2", "tok_revoked", "admin", TokenRole::Admin);
    s.insert_token(&revoked).await.unwrap();
    assert!(s.has_admin_token().await.unwrap());
    s.revoke_token("tok_revoked", time::now()).await.unwrap();
    assert!(!s.has_admin_token().await.unwrap(), "a revoked admin");
    let mut later = api_token("e3", "tok_later", "admin", TokenRole::Admin);
    later.expires_at = Some(time::now() + chrono::Duration::hours(1));
    s.insert_token(&later).await.unwrap();
    assert!(s.has_admin_token().await.unwrap());
}

/// Tokens issued before migration 0006 keep working: each gets a distinct
/// id (not derived from its hash), its role from `is_admin`, no expiry.
async fn legacy_tokens_migrate(url: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("connect");
    let mut before = sqlx::migrate!("./migrations");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 6)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&pool).await.expect("migrations 1-5");
    for (hash, owner, admin, created) in [
        ("aa", "admin", 1, 1_700_000_000_000_001_i64),
        ("bb", "alice", 0, 1_700_000_000_000_002),
        ("cc", "bob", 0, 1_700_000_000_000_002),
    ] {
        sqlx::query(
            "INSERT INTO api_tokens (token_hash, owner_id, is_admin, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(hash.repeat(32))
        .bind(owner)
        .bind(admin)
        .bind(created)
        .execute(&pool)
        .await
        .expect("a legacy token");
    }
    pool.close().await;

    let store = open_metadata_store(url).await.expect("migrated");
    let tokens = store.list_tokens(None).await.unwrap();
    assert_eq!(tokens.len(), 3, "{tokens:?}");
    let ids: BTreeSet<&str> = tokens.iter().map(|t| t.token_id.as_str()).collect();
    assert_eq!(ids.len(), 3, "distinct ids: {tokens:?}");
    for t in &tokens {
        assert!(t.token_id.starts_with("tok_legacy_"), "{t:?}");
        assert!(!t.token_id.contains(&t.token_hash[..8]), "{t:?}");
        assert_eq!(t.expires_at, None);
        assert_eq!(t.revoked_at, None);
        let role = if t.owner_id == "admin" {
            TokenRole::Admin
        } else {
            TokenRole::Tenant
        };
        assert_eq!(t.role, role, "{t:?}");
        assert_eq!(
            store.find_token(&t.token_hash).await.unwrap().as_ref(),
            Some(t)
        );
    }
    assert!(store.has_admin_token().await.unwrap());
    // New tokens still go in after the legacy ones.
    let fresh = api_token("dd", "tok_fresh", "carol", TokenRole::Metrics);
    store.insert_token(&fresh).await.unwrap();
    assert_eq!(store.list_tokens(None).await.unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn legacy_tokens_migrate_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("legacy.db").display()
    );
    legacy_tokens_migrate(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn legacy_tokens_migrate_on_postgres() {
    let admin_url = postgres_admin_url();
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at {admin_url}: {e}"));
    let db = format!("hotswap_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut admin)
        .await
        .expect("create database");
    let mut url = url::Url::parse(&admin_url).expect("a URL");
    url.set_path(&db);
    let outcome = tokio::spawn(async move { legacy_tokens_migrate(url.as_str()).await }).await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn delete_function_cascades(ctx: Ctx) {
    let s = ctx.store.as_ref();
    create_with_versions(s, "doomed", 2).await;
    create_with_versions(s, "kept", 1).await;
    s.create_alias(&alias("doomed", "prod", 1)).await.unwrap();
    s.create_alias(&alias("kept", "prod", 1)).await.unwrap();
    let doomed_trigger = trigger_of("doomed", TriggerType::Http, TriggerConfig::default());
    let kept_trigger = trigger_of("kept", TriggerType::Http, TriggerConfig::default());
    s.create_trigger(&doomed_trigger).await.unwrap();
    s.create_trigger(&kept_trigger).await.unwrap();
    let doomed_deployment = deployment("doomed", "prod", 1);
    s.create_deployment(&doomed_deployment).await.unwrap();
    s.create_deployment(&deployment("kept", "prod", 1))
        .await
        .unwrap();

    assert!(s.delete_function("doomed").await.unwrap());
    assert!(!s.delete_function("doomed").await.unwrap());
    assert_eq!(s.get_function_by_id("doomed").await.unwrap(), None);
    assert!(s.list_versions("doomed").await.unwrap().is_empty());
    assert!(s.list_aliases("doomed").await.unwrap().is_empty());
    assert_eq!(
        s.get_trigger(&doomed_trigger.trigger_id).await.unwrap(),
        None
    );
    assert!(s.list_deployments("doomed").await.unwrap().is_empty());
    assert_eq!(
        s.get_deployment(&doomed_deployment.deployment_id)
            .await
            .unwrap(),
        None
    );
    let by_tag = s
        .list_functions(&FunctionFilter {
            tag: Some(("team".to_owned(), Some("core".to_owned()))),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(names(&by_tag.items), ["kept"]);

    // The other function is untouched.
    assert_eq!(s.list_versions("kept").await.unwrap().len(), 2);
    assert_eq!(s.list_aliases("kept").await.unwrap().len(), 1);
    assert_eq!(s.list_triggers(None).await.unwrap(), vec![kept_trigger]);
    assert_eq!(s.list_deployments("kept").await.unwrap().len(), 1);

    // The name can be taken again, from a clean slate.
    create(s, "doomed", "someone-else").await;
    assert_eq!(s.list_versions("doomed").await.unwrap().len(), 1);
    assert!(s.list_aliases("doomed").await.unwrap().is_empty());
}

async fn data_survives_reopen(ctx: Ctx) {
    let f = create_with_versions(ctx.store.as_ref(), "durable", 2).await;
    let a = alias("durable", "prod", 2);
    ctx.store.create_alias(&a).await.unwrap();
    let t = trigger_of("durable", TriggerType::Http, TriggerConfig::default());
    ctx.store.create_trigger(&t).await.unwrap();
    let d = deployment("durable", "prod", 5);
    ctx.store.create_deployment(&d).await.unwrap();
    let r = RunnerNode::new("node-1", "h");
    ctx.store.upsert_runner(&r).await.unwrap();
    let mut token = api_token("ee", "tok_durable", "o", TokenRole::Admin);
    token.created_at = time::now();
    ctx.store.insert_token(&token).await.unwrap();
    let before = ctx.store.get_function_by_id("durable").await.unwrap();

    let ctx = ctx.reopen().await;
    let s = ctx.store.as_ref();
    assert_eq!(s.get_function_by_id("durable").await.unwrap(), before);
    assert_eq!(
        s.list_versions("durable").await.unwrap(),
        vec![snapshot(&f, 0), snapshot(&f, 1), snapshot(&f, 2)]
    );
    assert_eq!(s.get_alias("durable", "prod").await.unwrap(), Some(a));
    assert_eq!(s.get_trigger(&t.trigger_id).await.unwrap(), Some(t));
    assert_eq!(s.get_deployment(&d.deployment_id).await.unwrap(), Some(d));
    assert_eq!(s.get_runner("node-1").await.unwrap(), Some(r));
    assert_eq!(s.find_token(&token.token_hash).await.unwrap(), Some(token));
    assert!(s.has_admin_token().await.unwrap());
    // The counter survives too: numbers are not reused after a restart.
    assert_eq!(s.allocate_version_number("durable").await.unwrap(), 3);

    // Opening an up-to-date database again runs no migration twice.
    let again = ctx.reopen().await;
    assert_eq!(
        again
            .store
            .allocate_version_number("durable")
            .await
            .unwrap(),
        4
    );
}

async fn corrupt_rows_are_reported_not_panicked_on(ctx: Ctx) {
    let s = ctx.store.as_ref();
    sqlx::any::install_default_drivers();
    let mut raw = sqlx::AnyConnection::connect(&ctx.url)
        .await
        .expect("raw connection");

    for (corrupt_sql, column) in [
        (
            "UPDATE functions SET runtime = 'Cobol85'",
            "functions.runtime",
        ),
        (
            "UPDATE functions SET environment = 'not json'",
            "functions.environment",
        ),
        (
            "UPDATE functions SET memory_size = -1",
            "functions.memory_size",
        ),
        (
            "UPDATE functions SET created_at = 9223372036854775807",
            "functions.created_at",
        ),
        (
            "UPDATE functions SET published_version = 'latest'",
            "functions.published_version",
        ),
    ] {
        create_with_versions(s, "bad", 1).await;
        sqlx::query(corrupt_sql).execute(&mut raw).await.unwrap();
        if column == "functions.published_version" {
            // Only the version bookkeeping reads it as a number.
            let f = function("bad", "owner-1");
            let number = s.allocate_version_number("bad").await.unwrap();
            match s.insert_version(&snapshot(&f, number)).await {
                Err(StoreError::Corrupt(detail)) => assert!(detail.starts_with(column), "{detail}"),
                other => panic!("expected Corrupt, got {other:?}"),
            }
        } else {
            match s.get_function_by_id("bad").await {
                Err(StoreError::Corrupt(detail)) => {
                    assert!(detail.starts_with(column), "{corrupt_sql}: {detail}")
                }
                other => panic!("{corrupt_sql}: expected Corrupt, got {other:?}"),
            }
            let listed = s.list_functions(&FunctionFilter::default()).await;
            assert!(matches!(listed, Err(StoreError::Corrupt(_))), "{listed:?}");
        }
        // A corrupt function can still be deleted.
        assert!(s.delete_function("bad").await.unwrap());
    }

    create_with_versions(s, "bad", 1).await;
    sqlx::query("UPDATE versions SET status = 'Gone' WHERE version = 1")
        .execute(&mut raw)
        .await
        .unwrap();
    match s.get_version("bad", 1).await {
        Err(StoreError::Corrupt(detail)) => {
            assert!(detail.starts_with("versions.status"), "{detail}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(s.get_version("bad", 0).await.unwrap().is_some());
    raw.close().await.unwrap();
}

// ---- identity and names per owner ---------------------------------------------

/// A function as the API creates it: a fresh UUID for its id.
async fn create_fresh(store: &dyn MetadataStore, name: &str, owner: &str) -> Function {
    let mut f = function(name, owner);
    f.function_id = uuid::Uuid::new_v4().to_string();
    store
        .create_function(&f, &snapshot(&f, 0))
        .await
        .expect("create function");
    f
}

async fn two_owners_may_each_have_a_function_of_one_name(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let a = create_fresh(s, "orders", "alice").await;
    let b = create_fresh(s, "orders", "bob").await;
    assert_ne!(a.function_id, b.function_id);
    assert_eq!(
        s.get_function("alice", "orders").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        s.get_function("bob", "orders").await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(s.get_function("carol", "orders").await.unwrap(), None);
    assert_eq!(
        s.get_function_by_id(&b.function_id).await.unwrap(),
        Some(b.clone())
    );

    // Unique within an owner, whatever the id.
    let mut again = function("orders", "alice");
    again.function_id = uuid::Uuid::new_v4().to_string();
    let message = conflict(s.create_function(&again, &snapshot(&again, 0)).await);
    assert_eq!(message, "function 'orders' already exists");

    // Each one's versions, aliases and deployments are its own.
    let n = s.allocate_version_number(&a.function_id).await.unwrap();
    assert_eq!(n, 1);
    s.insert_version(&snapshot(&a, n)).await.unwrap();
    assert_eq!(s.list_versions(&a.function_id).await.unwrap().len(), 2);
    assert_eq!(s.list_versions(&b.function_id).await.unwrap().len(), 1);
    let prod = FunctionAlias::new("orders", "prod", 1).of_function(&a.function_id);
    s.create_alias(&prod).await.unwrap();
    assert!(s.list_aliases(&b.function_id).await.unwrap().is_empty());
    let bobs = FunctionAlias::new("orders", "prod", 1).of_function(&b.function_id);
    let message = conflict(s.create_alias(&bobs).await);
    assert!(message.contains("version 1"), "{message}");
    s.record_invocations(&a.function_id, 0, 3, at(1_800_000_000_000_000))
        .await
        .unwrap();
    let counted = |f: Option<Function>| f.unwrap().total_invocations;
    assert_eq!(
        counted(s.get_function("alice", "orders").await.unwrap()),
        a.total_invocations + 3
    );
    assert_eq!(
        counted(s.get_function("bob", "orders").await.unwrap()),
        b.total_invocations
    );

    // Lists: both by name then owner, or one owner's.
    let all = s.list_functions(&FunctionFilter::default()).await.unwrap();
    let owners: Vec<&str> = all.items.iter().map(|f| f.owner_id.as_str()).collect();
    assert_eq!(owners, ["alice", "bob"]);
    let page = s
        .list_functions(&FunctionFilter {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.next_token.as_deref(), Some("orders:alice"));
    let next = s
        .list_functions(&FunctionFilter {
            after: page.next_token,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(next.items, vec![b.clone()]);
    let bobs_only = s
        .list_functions(&FunctionFilter {
            owner_id: Some("bob".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(bobs_only.items.len(), 1);

    // Deleting one leaves the other whole.
    assert!(s.delete_function(&a.function_id).await.unwrap());
    assert_eq!(s.get_function("alice", "orders").await.unwrap(), None);
    assert_eq!(
        s.get_function("bob", "orders").await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(s.list_versions(&b.function_id).await.unwrap().len(), 1);
}

async fn a_recreated_function_gets_a_new_id_and_none_of_the_old_rows(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let old = create_fresh(s, "reuse", "bob").await;
    let n = s.allocate_version_number(&old.function_id).await.unwrap();
    s.insert_version(&snapshot(&old, n)).await.unwrap();
    let prod = FunctionAlias::new("reuse", "prod", 1).of_function(&old.function_id);
    s.create_alias(&prod).await.unwrap();
    let mut d = deployment("reuse", "prod", 1_700_000_000_000_000);
    d.function_id = old.function_id.clone();
    d.source_version = None;
    d.target_version = 1;
    s.create_deployment(&d).await.unwrap();
    assert!(s.delete_function(&old.function_id).await.unwrap());

    let new = Function::new("reuse", Runtime::Python311, "app.handler", "bob");
    assert_ne!(
        new.function_id, old.function_id,
        "Function::new gives a fresh id"
    );
    s.create_function(
        &new,
        &FunctionVersion::snapshot(&new, 0, "ab", 1, "bob", None),
    )
    .await
    .unwrap();
    let got = s.get_function("bob", "reuse").await.unwrap().unwrap();
    assert_eq!(got.function_id, new.function_id);
    assert_eq!(got.published_version, None);
    assert_eq!(s.list_versions(&new.function_id).await.unwrap().len(), 1);
    assert!(s.list_aliases(&new.function_id).await.unwrap().is_empty());
    assert!(s
        .list_deployments(&new.function_id)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.get_function_by_id(&old.function_id).await.unwrap(), None);
    // The old id addresses nothing any more.
    assert_eq!(s.get_version(&old.function_id, 1).await.unwrap(), None);
    let (kind, _) = not_found(s.allocate_version_number(&old.function_id).await);
    assert_eq!(kind, "function");
    let n = s.allocate_version_number(&new.function_id).await.unwrap();
    assert_eq!(n, 1, "the new function counts its versions from 1");
}

/// The schema as migrations 0001–0005 left it, with data, opened by the
/// store: functions keep everything, get `migrated-{name}` ids, and their
/// versions, aliases, tags, triggers and deployments follow them.
async fn a_database_at_migration_5_migrates_with_its_data(ctx: Ctx) {
    // A database of its own, built with the old migrations only.
    let url = match ctx.backend {
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap().keep();
            format!("sqlite://{}", dir.join("old.db").display())
        }
        _ => {
            // A second database next to the case's own.
            let mut url = url::Url::parse(&ctx.url).unwrap();
            let db = format!("hotswap_old_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&ctx.url).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&mut conn)
                .await
                .unwrap();
            url.set_path(&db);
            url.to_string()
        }
    };
    {
        use sqlx::Executor;
        sqlx::any::install_default_drivers();
        let connect = if url.starts_with("sqlite") {
            format!("{url}?mode=rwc")
        } else {
            url.clone()
        };
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&connect)
            .await
            .unwrap();
        // sqlx's own migrator, with the migrations up to 0005 only.
        let mut old = sqlx::migrate!("./migrations");
        old.migrations = old
            .migrations
            .iter()
            .filter(|m| m.version <= 5)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        old.run(&pool).await.expect("old schema");
        let mut conn = pool.acquire().await.unwrap();
        let old_rows = [
            "INSERT INTO functions (name, owner_id, description, runtime, handler, memory_size, timeout, \
             environment, layers, vpc_config, tags, published_version, version_counter, created_at, \
             updated_at, total_invocations, last_invoked_at, scaling_config, dead_letter_target) VALUES \
             ('orders', 'alice', 'old', 'Python311', 'app.handler', 256, 30, '{}', '[]', \
             '{\"subnetIds\":[\"subnet-old\"],\"securityGroupIds\":[],\"vpcId\":null}', \
             '{\"team\":\"core\"}', 'v1', 1, 1700000000000000, 1700000000000000, 7, NULL, '{}', NULL)",
            "INSERT INTO function_tags (function_name, tag_key, tag_value) VALUES ('orders', 'team', 'core')",
            "INSERT INTO versions (function_name, version, code_sha256, code_size, code_location, runtime, \
             handler, memory_size, timeout, environment, layers, created_at, created_by, description, \
             invocation_count, status) VALUES ('orders', 0, 'aa', 1, 'functions/orders/versions/latest/aa/code.zip', \
             'Python311', 'app.handler', 256, 30, '{}', '[]', 1700000000000000, 'alice', NULL, 0, 'Active'), \
             ('orders', 1, 'aa', 1, 'functions/orders/versions/1/code.zip', \
             'Python311', 'app.handler', 256, 30, '{}', '[]', 1700000000000000, 'alice', NULL, 5, 'Active')",
            "INSERT INTO aliases (function_name, alias_name, version, routing_config, description, created_at, \
             updated_at) VALUES ('orders', 'prod', 1, '{}', NULL, 1700000000000000, 1700000000000000)",
            "INSERT INTO triggers (trigger_id, function_name, target_version, trigger_type, is_enabled, config, \
             created_at, last_executed_at, execution_count, failure_count) VALUES ('t1', 'orders', 'prod', \
             'Http', 1, '{\"httpPath\":\"/orders\"}', 1700000000000000, NULL, 0, 0)",
            "INSERT INTO deployments (deployment_id, function_name, alias_name, target_version, source_version, \
             strategy, config, status, progress, current_phase, started_at, completed_at, deployed_by, \
             error_message, rollback_reason, metrics) VALUES ('d1', 'orders', 'prod', 1, NULL, 'AllAtOnce', \
             '{}', 'Completed', 100.0, NULL, 1700000000000000, NULL, 'alice', NULL, NULL, NULL)",
            "INSERT INTO async_invocations (request_id, function_name, qualifier, owner_id, payload, content_type, \
             status, attempts, max_attempts, next_attempt_at, lease_until, created_at, updated_at, result, \
             executed_version) VALUES ('r1', 'orders', '$LATEST', 'alice', 'e30=', 'application/json', 'Queued', \
             0, 3, 1700000000000000, NULL, 1700000000000000, 1700000000000000, NULL, NULL)",
        ];
        for sql in old_rows {
            conn.execute(sql).await.unwrap();
        }
        drop(conn);
        pool.close().await;
    }

    let s = open_metadata_store(&url).await.expect("migrates");
    let f = s
        .get_function("alice", "orders")
        .await
        .unwrap()
        .expect("kept");
    assert_eq!(f.function_id, "migrated-orders");
    assert_eq!(
        (
            f.description.as_deref(),
            f.total_invocations,
            f.published_version.as_deref()
        ),
        (Some("old"), 7, Some("v1"))
    );
    let versions = s.list_versions(&f.function_id).await.unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[1].function_id, f.function_id);
    assert_eq!(
        versions[1].code_location, "functions/orders/versions/1/code.zip",
        "stored locations stay"
    );
    assert_eq!(versions[1].invocation_count, 5);
    // $LATEST takes the function's vpcConfig; an older published version
    // has none.
    assert_eq!(versions[0].vpc_config, f.vpc_config);
    assert_eq!(
        f.vpc_config.as_ref().map(|v| v.subnet_ids.clone()),
        Some(vec!["subnet-old".to_owned()])
    );
    assert_eq!(versions[1].vpc_config, None);
    let prod = s
        .get_alias(&f.function_id, "prod")
        .await
        .unwrap()
        .expect("alias kept");
    assert_eq!(prod.version, 1);
    let tagged = s
        .list_functions(&FunctionFilter {
            tag: Some(("team".into(), Some("core".into()))),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(tagged.items.len(), 1, "tags follow");
    let triggers = s.list_triggers(Some(&f.function_id)).await.unwrap();
    assert_eq!(triggers.len(), 1);
    let deployments = s.list_deployments(&f.function_id).await.unwrap();
    assert_eq!(deployments[0].deployment_id, "d1");
    let inv = s.get_invocation("r1").await.unwrap().expect("kept");
    assert_eq!(inv.function_id.as_deref(), Some("migrated-orders"));
    // The migrated function keeps working: another owner may now take its
    // name, and it can publish again.
    let bobs = create_fresh(s.as_ref(), "orders", "bob").await;
    assert_ne!(bobs.function_id, f.function_id);
    assert_eq!(s.allocate_version_number(&f.function_id).await.unwrap(), 2);
    drop(s);
    if !url.starts_with("sqlite") {
        let db = url::Url::parse(&url)
            .unwrap()
            .path()
            .trim_start_matches('/')
            .to_owned();
        let mut conn = sqlx::PgConnection::connect(&ctx.url).await.unwrap();
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

async fn schedule_ticks_are_claimed_once_with_their_invocation(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let f = create(s, "cron", "o").await;
    let mut t = trigger_of(
        "cron",
        TriggerType::Scheduled,
        TriggerConfig {
            schedule_expression: Some("rate(1 minute)".to_owned()),
            ..Default::default()
        },
    );
    t.function_id = f.function_id.clone();
    s.create_trigger(&t).await.unwrap();
    assert_eq!(s.last_tick(&t.trigger_id).await.unwrap(), None);

    let tick = at(1_700_000_060_000_000);
    let mut first = queued("tick-a", "cron", "o", tick);
    first.trigger_id = Some(t.trigger_id.clone());
    first.function_id = Some(f.function_id.clone());
    assert!(s.claim_tick(&t.trigger_id, tick, &first).await.unwrap());
    // The same tick again (another server): nothing written.
    let second = queued("tick-b", "cron", "o", tick);
    assert!(!s.claim_tick(&t.trigger_id, tick, &second).await.unwrap());
    assert!(s.get_invocation("tick-b").await.unwrap().is_none());
    let stored = s.get_invocation("tick-a").await.unwrap().expect("queued");
    assert_eq!(stored.trigger_id.as_deref(), Some(t.trigger_id.as_str()));
    assert_eq!(s.last_tick(&t.trigger_id).await.unwrap(), Some(tick));

    let got = s.get_trigger(&t.trigger_id).await.unwrap().unwrap();
    assert_eq!(got.execution_count, 1);
    assert!(got.last_executed_at.is_some());
    s.record_trigger_runs(&t.trigger_id, 2, 1, Some(at(1_900_000_000_000_000)))
        .await
        .unwrap();
    let got = s.get_trigger(&t.trigger_id).await.unwrap().unwrap();
    assert_eq!((got.execution_count, got.failure_count), (3, 1));
    assert_eq!(got.last_executed_at, Some(at(1_900_000_000_000_000)));
    s.record_trigger_runs(&t.trigger_id, 0, 1, None)
        .await
        .unwrap();
    let got = s.get_trigger(&t.trigger_id).await.unwrap().unwrap();
    assert_eq!(got.failure_count, 2);
    assert_eq!(got.last_executed_at, Some(at(1_900_000_000_000_000)));

    // A disabled trigger claims nothing.
    let mut off = s.get_trigger(&t.trigger_id).await.unwrap().unwrap();
    off.is_enabled = false;
    s.update_trigger(&off).await.unwrap();
    let paused = at(1_700_000_090_000_000);
    assert!(!s
        .claim_tick(
            &t.trigger_id,
            paused,
            &queued("tick-p", "cron", "o", paused)
        )
        .await
        .unwrap());
    // Enabled again at 1_700_000_100: ticks before it stay unfired.
    off.is_enabled = true;
    off.enabled_at = Some(at(1_700_000_100_000_000));
    s.update_trigger(&off).await.unwrap();
    assert_eq!(
        s.get_trigger(&t.trigger_id)
            .await
            .unwrap()
            .unwrap()
            .enabled_at,
        off.enabled_at
    );
    let before = at(1_700_000_095_000_000);
    assert!(!s
        .claim_tick(
            &t.trigger_id,
            before,
            &queued("tick-b4", "cron", "o", before)
        )
        .await
        .unwrap());

    // Old claims go, the newest stays; a deleted trigger claims nothing.
    let later = at(1_700_000_120_000_000);
    assert!(s
        .claim_tick(&t.trigger_id, later, &queued("tick-c", "cron", "o", later))
        .await
        .unwrap());
    assert_eq!(s.prune_ticks(at(1_800_000_000_000_000)).await.unwrap(), 1);
    assert_eq!(s.last_tick(&t.trigger_id).await.unwrap(), Some(later));
    assert!(s.delete_trigger(&t.trigger_id).await.unwrap());
    let gone = at(1_700_000_180_000_000);
    assert!(!s
        .claim_tick(&t.trigger_id, gone, &queued("tick-d", "cron", "o", gone))
        .await
        .unwrap());
    assert!(s.get_invocation("tick-d").await.unwrap().is_none());
}

// ---- networking ---------------------------------------------------------------

fn subnet(id: &str, name: &str, cidr: &str) -> Subnet {
    let mut s = Subnet::new(name, cidr.parse().expect("valid cidr"), "admin");
    s.subnet_id = id.to_owned();
    s.created_at = at(1_700_000_500_000_001);
    s
}

fn rule(text: &str) -> EgressRule {
    let (proto, rest) = text.split_once(':').expect("PROTO:…");
    let (ports, dest) = match rest.rsplit_once(':') {
        Some((p, d)) => (Some(p.to_owned()), d),
        None => (None, rest),
    };
    EgressRuleInput {
        protocol: proto.into(),
        ports,
        cidr: (dest != "host").then(|| dest.to_owned()),
        host: dest == "host",
    }
    .parse(0)
    .expect("valid rule")
}

fn group(id: &str, name: &str, owner: &str, rules: &[&str]) -> SecurityGroup {
    let mut g = SecurityGroup::new(name, owner, rules.iter().map(|r| rule(r)).collect());
    g.security_group_id = id.to_owned();
    g.created_at = at(1_700_000_600_000_001);
    g.updated_at = g.created_at;
    g
}

async fn subnets_round_trip_and_never_overlap(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let b = subnet("subnet-b", "b-net", "10.1.0.0/16");
    let a = subnet("subnet-a", "a-net", "192.168.7.0/24");
    s.create_subnet(&b).await.unwrap();
    s.create_subnet(&a).await.unwrap();
    assert_eq!(s.get_subnet("subnet-b").await.unwrap(), Some(b.clone()));
    assert_eq!(s.get_subnet("subnet-x").await.unwrap(), None);
    assert_eq!(s.list_subnets().await.unwrap(), vec![a.clone(), b.clone()]);

    let message = conflict(
        s.create_subnet(&subnet("subnet-c", "c", "10.1.2.0/24"))
            .await,
    );
    assert!(message.contains("overlaps subnet 'b-net'"), "{message}");
    conflict(
        s.create_subnet(&subnet("subnet-c", "c", "10.0.0.0/8"))
            .await,
    );
    conflict(
        s.create_subnet(&subnet("subnet-c", "a-net", "10.2.0.0/16"))
            .await,
    );
    conflict(
        s.create_subnet(&subnet("subnet-a", "c", "10.3.0.0/16"))
            .await,
    );

    // Two concurrent creators of overlapping blocks: one wins.
    let (x, y) = (
        subnet("subnet-x", "x", "172.16.0.0/16"),
        subnet("subnet-y", "y", "172.16.4.0/24"),
    );
    let (rx, ry) = tokio::join!(s.create_subnet(&x), s.create_subnet(&y));
    assert_eq!(
        [rx.is_ok(), ry.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{rx:?} {ry:?}"
    );

    assert!(s.delete_subnet("subnet-b").await.unwrap());
    assert!(!s.delete_subnet("subnet-b").await.unwrap());
    s.create_subnet(&subnet("subnet-c", "c", "10.1.2.0/24"))
        .await
        .unwrap();
}

async fn security_groups_belong_to_their_owner(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let web = group(
        "sg-web",
        "web",
        "alice",
        &[
            "tcp:5432:host",
            "all:10.0.0.0/8",
            "udp:53-54:192.168.0.0/16",
        ],
    );
    let db = group("sg-db", "db", "alice", &[]);
    let bobs = group("sg-bob", "web", "bob", &["tcp:443:10.9.0.0/16"]);
    for g in [&web, &db, &bobs] {
        s.create_security_group(g).await.unwrap();
    }
    assert_eq!(
        s.get_security_group("sg-web").await.unwrap(),
        Some(web.clone())
    );
    assert_eq!(s.get_security_group("sg-none").await.unwrap(), None);
    assert_eq!(
        s.list_security_groups(Some("alice")).await.unwrap(),
        vec![db.clone(), web.clone()]
    );
    assert_eq!(
        s.list_security_groups(None).await.unwrap(),
        vec![db.clone(), bobs.clone(), web.clone()]
    );
    // Names are unique per owner.
    let message = conflict(
        s.create_security_group(&group("sg-2", "web", "alice", &[]))
            .await,
    );
    assert!(message.contains("'web'"), "{message}");
    conflict(
        s.create_security_group(&group("sg-web", "x", "carol", &[]))
            .await,
    );

    // An update replaces name and rules; owner and creation time stay.
    let mut changed = web.clone();
    changed.group_name = "web-2".into();
    changed.egress = vec![rule("tcp:8000-8100:10.0.0.0/8")];
    changed.owner_id = "mallory".into();
    changed.created_at = at(1);
    changed.updated_at = at(1_700_000_700_000_001);
    s.update_security_group(&changed).await.unwrap();
    let got = s.get_security_group("sg-web").await.unwrap().unwrap();
    assert_eq!(got.group_name, "web-2");
    assert_eq!(got.egress, changed.egress);
    assert_eq!(got.updated_at, changed.updated_at);
    assert_eq!(
        (got.owner_id.as_str(), got.created_at),
        ("alice", web.created_at)
    );
    let mut clash = db.clone();
    clash.group_name = "web-2".into();
    conflict(s.update_security_group(&clash).await);
    let (kind, id) = not_found(
        s.update_security_group(&group("sg-none", "n", "alice", &[]))
            .await,
    );
    assert_eq!((kind, id.as_str()), ("security group", "sg-none"));

    assert!(s.delete_security_group("sg-db").await.unwrap());
    assert!(!s.delete_security_group("sg-db").await.unwrap());
}

async fn network_resources_in_use_cannot_be_deleted(ctx: Ctx) {
    let s = ctx.store.as_ref();
    // The fixture's function names subnet-1, subnet-2 and sg-1.
    s.create_subnet(&subnet("subnet-1", "one", "10.1.0.0/24"))
        .await
        .unwrap();
    s.create_subnet(&subnet("subnet-10", "ten", "10.10.0.0/24"))
        .await
        .unwrap();
    s.create_security_group(&group("sg-1", "g1", "o", &["all:10.0.0.0/8"]))
        .await
        .unwrap();
    s.create_security_group(&group("sg-10", "g10", "o", &[]))
        .await
        .unwrap();
    let f = create(s, "netfn", "o").await;
    let number = s.allocate_version_number(&f.function_id).await.unwrap();
    s.insert_version(&snapshot(&f, number)).await.unwrap();

    let user = |version: u32| VpcUser {
        owner_id: "o".into(),
        function_name: "netfn".into(),
        function_id: f.function_id.clone(),
        version,
    };
    assert_eq!(
        s.subnet_users("subnet-1").await.unwrap(),
        vec![user(0), user(1)]
    );
    assert_eq!(
        s.security_group_users("sg-1").await.unwrap(),
        vec![user(0), user(1)]
    );
    // An id that merely starts like a used one is not in use.
    assert_eq!(s.subnet_users("subnet-10").await.unwrap(), vec![]);
    assert_eq!(s.security_group_users("sg-10").await.unwrap(), vec![]);
    assert!(s.delete_subnet("subnet-10").await.unwrap());
    assert!(s.delete_security_group("sg-10").await.unwrap());

    let message = conflict(s.delete_subnet("subnet-1").await);
    assert_eq!(
        message,
        "subnet 'subnet-1' is in use by o/netfn ($LATEST, v1)"
    );
    let message = conflict(s.delete_security_group("sg-1").await);
    assert_eq!(
        message,
        "security group 'sg-1' is in use by o/netfn ($LATEST, v1)"
    );

    // The function leaves the VPC: its published version still holds on.
    let mut out = f.clone();
    out.vpc_config = None;
    s.update_function(&out, &snapshot(&out, 0)).await.unwrap();
    assert_eq!(s.subnet_users("subnet-1").await.unwrap(), vec![user(1)]);
    let message = conflict(s.delete_subnet("subnet-1").await);
    assert!(message.ends_with("o/netfn (v1)"), "{message}");

    s.delete_version(&f.function_id, number).await.unwrap();
    assert_eq!(s.subnet_users("subnet-1").await.unwrap(), vec![]);
    assert!(s.delete_subnet("subnet-1").await.unwrap());
    assert!(s.delete_security_group("sg-1").await.unwrap());
}

async fn versions_keep_their_vpc_config(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let f = create(s, "vpcver", "o").await;
    let number = s.allocate_version_number(&f.function_id).await.unwrap();
    let v1 = snapshot(&f, number);
    assert!(v1.vpc_config.is_some());
    s.insert_version(&v1).await.unwrap();
    let mut moved = f.clone();
    moved.vpc_config = Some(VpcConfig {
        subnet_ids: vec!["subnet-9".into()],
        ..Default::default()
    });
    s.update_function(&moved, &snapshot(&moved, 0))
        .await
        .unwrap();
    let stored = s
        .get_version(&f.function_id, number)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.vpc_config, f.vpc_config);
    let latest = s.get_version(&f.function_id, 0).await.unwrap().unwrap();
    assert_eq!(latest.vpc_config, moved.vpc_config);
    let ctx = ctx.reopen().await;
    let latest = ctx
        .store
        .get_version(&f.function_id, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.vpc_config, moved.vpc_config);
}

// ---- embedded queues ----------------------------------------------------------

fn message(owner: &str, queue: &str, body: &str, sent: Timestamp) -> QueueMessage {
    let attributes = BTreeMap::from([("trace".to_owned(), format!("t-{body}"))]);
    QueueMessage::new(owner, queue, body, attributes, sent)
}

fn micros(n: i64) -> chrono::Duration {
    chrono::Duration::microseconds(n)
}

fn bodies(received: &[(QueueMessage, Receipt)]) -> Vec<&str> {
    received.iter().map(|(m, _)| m.body.as_str()).collect()
}

fn receipts(received: &[(QueueMessage, Receipt)]) -> Vec<Receipt> {
    received.iter().map(|(_, r)| r.clone()).collect()
}

const VISIBILITY: Duration = Duration::from_secs(30);

async fn queue_messages_are_sent_received_and_acknowledged(ctx: Ctx) {
    let store = ctx.store.as_ref();
    let t0 = time::now();
    assert_eq!(
        store.queue_summary("alice", "orders", t0).await.unwrap(),
        None
    );
    let sent: Vec<QueueMessage> = (0..3)
        .map(|i| message("alice", "orders", &format!("m{i}"), t0 + micros(i)))
        .collect();
    // Sent newest first: receives still go by sent_at.
    for m in sent.iter().rev() {
        store.queue_send(m).await.unwrap();
    }
    store
        .queue_send(&message("bob", "orders", "bob's", t0))
        .await
        .unwrap();
    let conflict_msg = conflict(store.queue_send(&sent[0]).await);
    assert!(conflict_msg.contains("already exists"), "{conflict_msg}");

    let now = t0 + micros(10);
    let got = store
        .queue_receive("alice", "orders", 2, VISIBILITY, now)
        .await
        .unwrap();
    assert_eq!(bodies(&got), ["m0", "m1"]);
    for (m, r) in &got {
        assert_eq!(r.message_id(), m.message_id);
        assert_eq!(m.receive_count, 1);
        assert_eq!(m.first_received_at, Some(now));
        assert_eq!(m.visible_at, now + chrono::Duration::seconds(30));
        assert_eq!(m.owner_id, "alice");
        assert_eq!(m.attributes["trace"], format!("t-{}", m.body));
    }
    let sum = store
        .queue_summary("alice", "orders", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((sum.depth, sum.in_flight), (1, 2));
    assert_eq!(
        sum.created_at,
        t0 + micros(2),
        "the first message sent made it"
    );
    assert_eq!(sum.owner_id, "alice");

    assert_eq!(
        store
            .queue_ack("alice", "orders", &receipts(&got))
            .await
            .unwrap(),
        2
    );
    // Acknowledged once only; another owner's or queue's name matches nothing.
    assert_eq!(
        store
            .queue_ack("alice", "orders", &receipts(&got))
            .await
            .unwrap(),
        0
    );
    let rest = store
        .queue_receive("alice", "orders", 10, VISIBILITY, now)
        .await
        .unwrap();
    assert_eq!(bodies(&rest), ["m2"]);
    assert_eq!(
        store
            .queue_ack("bob", "orders", &receipts(&rest))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .queue_ack("alice", "other", &receipts(&rest))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .queue_ack("alice", "orders", &receipts(&rest))
            .await
            .unwrap(),
        1
    );
    assert!(store.queue_ack("alice", "orders", &[]).await.unwrap() == 0);

    let all = store.queue_summaries(None, now).await.unwrap();
    let listed: Vec<(&str, &str, u64, u64)> = all
        .iter()
        .map(|s| {
            (
                s.owner_id.as_str(),
                s.queue_name.as_str(),
                s.depth,
                s.in_flight,
            )
        })
        .collect();
    assert_eq!(listed, [("alice", "orders", 0, 0), ("bob", "orders", 1, 0)]);
    let bobs = store.queue_summaries(Some("bob"), now).await.unwrap();
    assert_eq!(bobs.len(), 1);
    assert!(bobs[0].oldest_age_seconds == 0);
    let later = t0 + chrono::Duration::seconds(90);
    let bobs = store.queue_summaries(Some("bob"), later).await.unwrap();
    assert_eq!(bobs[0].oldest_age_seconds, 90);
    // Nothing visible: an empty answer, not an error.
    assert!(store
        .queue_receive("alice", "orders", 10, VISIBILITY, now)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .queue_receive("alice", "nope", 0, VISIBILITY, now)
        .await
        .unwrap()
        .is_empty());
}

async fn invisible_messages_come_back_only_after_their_visibility(ctx: Ctx) {
    let store = ctx.store.as_ref();
    let t0 = time::now();
    store
        .queue_send(&message("alice", "q", "one", t0))
        .await
        .unwrap();
    let first = store
        .queue_receive("alice", "q", 10, VISIBILITY, t0)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let back = t0 + chrono::Duration::seconds(30);
    // Not a microsecond early.
    assert!(store
        .queue_receive("alice", "q", 10, VISIBILITY, back - micros(1))
        .await
        .unwrap()
        .is_empty());
    let sum = store
        .queue_summary("alice", "q", back - micros(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((sum.depth, sum.in_flight), (0, 1));
    let second = store
        .queue_receive("alice", "q", 10, VISIBILITY, back)
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    let (m, r2) = &second[0];
    assert_eq!(m.receive_count, 2);
    assert_eq!(m.first_received_at, Some(t0), "the first receive is kept");
    assert_ne!(r2, &first[0].1);
    // The first receipt is stale: it acknowledges, releases and moves nothing.
    let stale = receipts(&first);
    assert_eq!(store.queue_ack("alice", "q", &stale).await.unwrap(), 0);
    assert_eq!(
        store
            .queue_release("alice", "q", &stale, Duration::ZERO, false, back)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .queue_move("alice", "q", &stale[0], "dlq", back)
            .await
            .unwrap(),
        None
    );
    // A receipt of the right shape that was never handed out does nothing.
    let forged = Receipt::new(&m.message_id, 2, "0123456789abcdef");
    assert_eq!(store.queue_ack("alice", "q", &[forged]).await.unwrap(), 0);
    assert_eq!(
        store
            .queue_ack("alice", "q", &receipts(&second))
            .await
            .unwrap(),
        1
    );
    let sum = store
        .queue_summary("alice", "q", back)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (sum.depth, sum.in_flight, sum.oldest_age_seconds),
        (0, 0, 0)
    );
}

async fn released_messages_come_back_and_may_take_their_receive_back(ctx: Ctx) {
    let store = ctx.store.as_ref();
    let t0 = time::now();
    store
        .queue_send(&message("alice", "q", "a", t0))
        .await
        .unwrap();
    store
        .queue_send(&message("alice", "q", "b", t0 + micros(1)))
        .await
        .unwrap();
    let got = store
        .queue_receive("alice", "q", 10, VISIBILITY, t0 + micros(1))
        .await
        .unwrap();
    assert_eq!(bodies(&got), ["a", "b"]);
    // Throttled: back at once, as if never received.
    let n = store
        .queue_release("alice", "q", &receipts(&got), Duration::ZERO, true, t0)
        .await
        .unwrap();
    assert_eq!(n, 2);
    // The released receipts are spent.
    assert_eq!(
        store
            .queue_ack("alice", "q", &receipts(&got))
            .await
            .unwrap(),
        0
    );
    let again = store
        .queue_receive("alice", "q", 10, VISIBILITY, t0 + micros(5))
        .await
        .unwrap();
    assert_eq!(bodies(&again), ["a", "b"]);
    for (m, _) in &again {
        assert_eq!(m.receive_count, 1, "the throttled receive was taken back");
        assert_eq!(m.first_received_at, Some(t0 + micros(5)));
    }
    // A failed batch: back after a delay, the receive counted.
    let at = t0 + chrono::Duration::seconds(1);
    store
        .queue_release(
            "alice",
            "q",
            &receipts(&again),
            Duration::from_secs(10),
            false,
            at,
        )
        .await
        .unwrap();
    let sum = store
        .queue_summary("alice", "q", at)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((sum.depth, sum.in_flight), (0, 2));
    let due = at + chrono::Duration::seconds(10);
    assert!(store
        .queue_receive("alice", "q", 10, VISIBILITY, due - micros(1))
        .await
        .unwrap()
        .is_empty());
    let third = store
        .queue_receive("alice", "q", 1, VISIBILITY, due)
        .await
        .unwrap();
    assert_eq!(bodies(&third), ["a"]);
    assert_eq!(third[0].0.receive_count, 2);
    assert_eq!(third[0].0.first_received_at, Some(t0 + micros(5)));
    // Uncounting a second receive keeps the first's time.
    store
        .queue_release("alice", "q", &receipts(&third), Duration::ZERO, true, due)
        .await
        .unwrap();
    let fourth = store
        .queue_receive("alice", "q", 1, VISIBILITY, due)
        .await
        .unwrap();
    assert_eq!(fourth[0].0.receive_count, 2);
    assert_eq!(fourth[0].0.first_received_at, Some(t0 + micros(5)));
}

async fn dead_lettered_messages_move_with_their_attributes(ctx: Ctx) {
    let store = ctx.store.as_ref();
    let t0 = time::now();
    let sent = message("alice", "orders", "poison", t0);
    store.queue_send(&sent).await.unwrap();
    let got = store
        .queue_receive("alice", "orders", 1, VISIBILITY, t0)
        .await
        .unwrap();
    let at = t0 + chrono::Duration::seconds(2);
    // Another owner's or queue's name moves nothing.
    assert_eq!(
        store
            .queue_move("bob", "orders", &got[0].1, "dlq", at)
            .await
            .unwrap(),
        None
    );
    let moved = store
        .queue_move("alice", "orders", &got[0].1, "dlq", at)
        .await
        .unwrap()
        .expect("moved");
    assert_eq!(moved.message_id, sent.message_id);
    assert_eq!(moved.queue_name, "dlq");
    assert_eq!(moved.body, "poison");
    assert_eq!(moved.sent_at, t0);
    assert_eq!(moved.receive_count, 0);
    assert_eq!(moved.first_received_at, None);
    assert_eq!(
        moved.attributes,
        BTreeMap::from([
            ("DeadLetterSourceQueue".to_owned(), "orders".to_owned()),
            ("trace".to_owned(), "t-poison".to_owned()),
        ])
    );
    // Moved once: the receipt is spent.
    assert_eq!(
        store
            .queue_move("alice", "orders", &got[0].1, "dlq", at)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .queue_ack("alice", "orders", &receipts(&got))
            .await
            .unwrap(),
        0
    );
    let dlq = store
        .queue_receive("alice", "dlq", 10, VISIBILITY, at)
        .await
        .unwrap();
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        dlq[0].0,
        QueueMessage {
            receive_count: 1,
            first_received_at: Some(at),
            visible_at: at + chrono::Duration::seconds(30),
            ..moved
        }
    );
    let names: Vec<String> = store
        .queue_summaries(Some("alice"), at)
        .await
        .unwrap()
        .into_iter()
        .map(|s| format!("{}:{}+{}", s.queue_name, s.depth, s.in_flight))
        .collect();
    assert_eq!(names, ["dlq:0+1", "orders:0+0"]);
    assert!(store
        .queue_summary("bob", "dlq", at)
        .await
        .unwrap()
        .is_none());
}

async fn purging_empties_one_owners_queue(ctx: Ctx) {
    let store = ctx.store.as_ref();
    let t0 = time::now();
    for i in 0..5 {
        store
            .queue_send(&message("alice", "q", &format!("{i}"), t0 + micros(i)))
            .await
            .unwrap();
    }
    store
        .queue_send(&message("bob", "q", "b", t0))
        .await
        .unwrap();
    store
        .queue_send(&message("alice", "r", "r", t0))
        .await
        .unwrap();
    // In-flight messages are purged too.
    let got = store
        .queue_receive("alice", "q", 2, VISIBILITY, t0)
        .await
        .unwrap();
    assert_eq!(store.queue_purge("alice", "q").await.unwrap(), 5);
    assert_eq!(store.queue_purge("alice", "q").await.unwrap(), 0);
    assert_eq!(store.queue_purge("alice", "never").await.unwrap(), 0);
    assert_eq!(
        store
            .queue_ack("alice", "q", &receipts(&got))
            .await
            .unwrap(),
        0
    );
    let sum = store
        .queue_summary("alice", "q", t0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (sum.depth, sum.in_flight),
        (0, 0),
        "a purged queue stays, empty"
    );
    for (owner, queue) in [("bob", "q"), ("alice", "r")] {
        let sum = store
            .queue_summary(owner, queue, t0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(sum.depth, 1, "{owner}/{queue}");
    }
    // A queue survives a reopen with its messages.
    let ctx = ctx.reopen().await;
    let got = ctx
        .store
        .queue_receive("bob", "q", 10, VISIBILITY, t0)
        .await
        .unwrap();
    assert_eq!(bodies(&got), ["b"]);
}

async fn concurrent_receivers_get_each_message_once(ctx: Ctx) {
    let t0 = time::now();
    for i in 0..200 {
        ctx.store
            .queue_send(&message("alice", "load", &format!("{i}"), t0 + micros(i)))
            .await
            .unwrap();
    }
    let now = t0 + micros(500);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = ctx.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .queue_receive("alice", "load", 7, VISIBILITY, now)
                    .await
                    .unwrap();
                if got.is_empty() {
                    break;
                }
                mine.extend(got);
            }
            mine
        }));
    }
    let mut seen = BTreeSet::new();
    let mut all = Vec::new();
    for task in tasks {
        for (m, r) in task.await.unwrap() {
            assert_eq!(m.receive_count, 1, "{}", m.body);
            assert!(
                seen.insert(m.message_id.clone()),
                "{} received twice",
                m.body
            );
            all.push(r);
        }
    }
    assert_eq!(seen.len(), 200);
    assert_eq!(
        ctx.store.queue_ack("alice", "load", &all).await.unwrap(),
        200
    );
    let sum = ctx
        .store
        .queue_summary("alice", "load", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((sum.depth, sum.in_flight), (0, 0));
}

// ---- stream shards ----------------------------------------------------------------

/// A Stream trigger of a new function `name`.
async fn stream_trigger(store: &dyn MetadataStore, name: &str) -> Trigger {
    let f = create(store, name, "o").await;
    let mut t = trigger_of(name, TriggerType::Stream, TriggerConfig::default());
    t.function_id = f.function_id;
    store.create_trigger(&t).await.unwrap();
    t
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

async fn stream_leases_go_to_one_owner_until_they_expire(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let t = stream_trigger(s, "clicks").await;
    let id = t.trigger_id.as_str();
    let t0 = time::now();

    // Free: taken, with no checkpoint yet.
    assert_eq!(
        s.stream_lease(id, 0, "a", t0 + secs(30), t0).await.unwrap(),
        Some(None)
    );
    // Held by a: b is refused, a renews.
    assert_eq!(
        s.stream_lease(id, 0, "b", t0 + secs(40), t0 + secs(10))
            .await
            .unwrap(),
        None
    );
    assert!(s.stream_checkpoint(id, 0, "a", "17").await.unwrap());
    assert_eq!(
        s.stream_lease(id, 0, "a", t0 + secs(50), t0 + secs(20))
            .await
            .unwrap(),
        Some(Some("17".to_owned()))
    );
    // Another shard is a lease of its own.
    assert_eq!(
        s.stream_lease(id, 1, "b", t0 + secs(50), t0 + secs(20))
            .await
            .unwrap(),
        Some(None)
    );
    // Renewed until 50: still a's at 49, b's from 50 on, with the checkpoint.
    assert_eq!(
        s.stream_lease(id, 0, "b", t0 + secs(79), t0 + secs(49))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.stream_lease(id, 0, "b", t0 + secs(80), t0 + secs(50))
            .await
            .unwrap(),
        Some(Some("17".to_owned()))
    );
    assert_eq!(
        s.stream_lease(id, 0, "a", t0 + secs(90), t0 + secs(60))
            .await
            .unwrap(),
        None
    );
    // Released: free at once, checkpoint kept. Releasing what one does not
    // hold changes nothing.
    assert!(!s.stream_release(id, 0, "a").await.unwrap());
    assert!(s.stream_release(id, 0, "b").await.unwrap());
    assert_eq!(
        s.stream_lease(id, 0, "a", t0 + secs(91), t0 + secs(61))
            .await
            .unwrap(),
        Some(Some("17".to_owned()))
    );
    let shards = s.stream_shards(id).await.unwrap();
    assert_eq!(
        shards,
        vec![
            StreamShardState {
                shard: 0,
                checkpoint: Some("17".to_owned()),
                lease_owner: Some("a".to_owned()),
                lease_expires_at: Some(t0 + secs(91)),
            },
            StreamShardState {
                shard: 1,
                checkpoint: None,
                lease_owner: Some("b".to_owned()),
                lease_expires_at: Some(t0 + secs(50)),
            },
        ]
    );
    // A trigger that does not exist has no lease to take.
    let (kind, _) = not_found(s.stream_lease("nope", 0, "a", t0 + secs(30), t0).await);
    assert_eq!(kind, "trigger");
}

async fn a_stale_owner_cannot_move_the_checkpoint(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let t = stream_trigger(s, "orders").await;
    let id = t.trigger_id.as_str();
    let t0 = time::now();
    // No row yet: nobody holds the lease.
    assert!(!s.stream_checkpoint(id, 0, "a", "1").await.unwrap());
    s.stream_lease(id, 0, "a", t0 + secs(30), t0).await.unwrap();
    assert!(s.stream_checkpoint(id, 0, "a", "").await.unwrap());
    assert!(s.stream_checkpoint(id, 0, "a", "5").await.unwrap());
    // a's lease runs out and b takes over, moving on to 9.
    assert_eq!(
        s.stream_lease(id, 0, "b", t0 + secs(60), t0 + secs(30))
            .await
            .unwrap(),
        Some(Some("5".to_owned()))
    );
    assert!(s.stream_checkpoint(id, 0, "b", "9").await.unwrap());
    // a finishes an old batch: its checkpoint is refused, 9 stays.
    assert!(!s.stream_checkpoint(id, 0, "a", "6").await.unwrap());
    assert!(!s.stream_release(id, 0, "a").await.unwrap());
    let shard = &s.stream_shards(id).await.unwrap()[0];
    assert_eq!(shard.checkpoint.as_deref(), Some("9"));
    assert_eq!(shard.lease_owner.as_deref(), Some("b"));
    // After a release nobody may write until the lease is taken again.
    assert!(s.stream_release(id, 0, "b").await.unwrap());
    assert!(!s.stream_checkpoint(id, 0, "b", "10").await.unwrap());
    assert_eq!(
        s.stream_shards(id).await.unwrap()[0].checkpoint.as_deref(),
        Some("9")
    );
}

async fn concurrent_lease_takers_get_one_lease(ctx: Ctx) {
    let t = stream_trigger(ctx.store.as_ref(), "race").await;
    let t0 = time::now();
    for shard in 0..5u32 {
        let mut tasks = Vec::new();
        for owner in 0..6 {
            let store = ctx.store.clone();
            let id = t.trigger_id.clone();
            tasks.push(tokio::spawn(async move {
                let got = store
                    .stream_lease(&id, shard, &format!("owner-{owner}"), t0 + secs(30), t0)
                    .await
                    .unwrap();
                (owner, got.is_some())
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (owner, won) = task.await.unwrap();
            if won {
                winners.push(owner);
            }
        }
        assert_eq!(winners.len(), 1, "shard {shard}: {winners:?}");
        let state = ctx.store.stream_shards(&t.trigger_id).await.unwrap();
        assert_eq!(
            state[shard as usize].lease_owner,
            Some(format!("owner-{}", winners[0]))
        );
    }
}

async fn stream_shards_go_with_their_trigger(ctx: Ctx) {
    let s = ctx.store.as_ref();
    let gone = stream_trigger(s, "gone").await;
    let kept = stream_trigger(s, "kept").await;
    let t0 = time::now();
    for t in [&gone, &kept] {
        for shard in 0..3 {
            s.stream_lease(&t.trigger_id, shard, "a", t0 + secs(30), t0)
                .await
                .unwrap();
            assert!(s
                .stream_checkpoint(&t.trigger_id, shard, "a", "42")
                .await
                .unwrap());
        }
    }
    assert!(s.delete_trigger(&gone.trigger_id).await.unwrap());
    assert!(s.stream_shards(&gone.trigger_id).await.unwrap().is_empty());
    assert_eq!(s.stream_shards(&kept.trigger_id).await.unwrap().len(), 3);
    // A trigger recreated under the old id starts from nothing.
    s.create_trigger(&gone).await.unwrap();
    assert_eq!(
        s.stream_lease(&gone.trigger_id, 0, "b", t0 + secs(30), t0)
            .await
            .unwrap(),
        Some(None)
    );
    // Deleting the function deletes its triggers' shards too.
    assert!(s.delete_function(&kept.function_id).await.unwrap());
    assert!(s.stream_shards(&kept.trigger_id).await.unwrap().is_empty());
}
