//! Scheduled triggers through the real binary: each tick of a schedule
//! becomes exactly one asynchronous invocation carrying the EventBridge
//! "Scheduled Event" whose `time` is the tick's scheduled time; disabling
//! and deleting stop it; servers sharing a PostgreSQL database fire each
//! tick once; late ticks keep their time and ticks older than the allowed
//! lateness are skipped; the CLI shows the next run.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, TimeZone, Utc, Weekday};
use common::*;
use serde_json::{json, Value};

const CODE: &str = r#"
import json
def echo(event, context):
    print("tick", json.dumps(event))
    return event
def boom(event, context):
    raise RuntimeError("scheduled run failed")
"#;

type Ts = DateTime<Utc>;

fn ts(v: &Value) -> Ts {
    v.as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {v}"))
        .parse()
        .unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {v}"))
}

/// How an event's `time` shows a tick: RFC 3339, whole seconds, `Z`.
fn secs(t: Ts) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn sleep_until(t: Ts) {
    if let Ok(d) = (t - Utc::now()).to_std() {
        std::thread::sleep(d);
    }
}

/// The `k`-th tick of a rate schedule: `created + k × period`.
fn tick(created: Ts, period_s: i64, k: i64) -> Ts {
    created + chrono::Duration::seconds(period_s * k)
}

/// The ticks of a rate schedule in `(from, to]`.
fn ticks_in(created: Ts, period_s: i64, from: Ts, to: Ts) -> Vec<Ts> {
    (1..)
        .map(|k| tick(created, period_s, k))
        .skip_while(|t| *t <= from)
        .take_while(|t| *t <= to)
        .collect()
}

/// The first tick strictly after `t`.
fn next_tick(created: Ts, period_s: i64, t: Ts) -> Ts {
    (1..)
        .map(|k| tick(created, period_s, k))
        .find(|x| *x > t)
        .unwrap()
}

/// Whether `t` is one of the ticks (to the microsecond).
fn is_tick(created: Ts, period_s: i64, t: Ts) -> bool {
    let d = (t - created).num_microseconds().unwrap();
    d > 0 && d % (period_s * 1_000_000) == 0
}

fn create_function(s: &Server, token: &str, name: &str, handler: &str) {
    let body = json!({ "name": name, "runtime": "Python311", "handler": handler, "timeout": 5,
        "code": { "zipFile": b64(&zip_of(&[("app.py", CODE)])) } });
    let (st, f) = s.call("POST", "/v1/functions", Some(token), Some(body));
    assert_eq!(st, 201, "{f}");
}

fn create_schedule(s: &Server, token: &str, function: &str, config: Value) -> Value {
    let (st, t) = s.call(
        "POST",
        "/v1/triggers",
        Some(token),
        Some(json!({ "functionName": function, "type": "Scheduled", "config": config })),
    );
    assert_eq!(st, 201, "{t}");
    assert_eq!(t["type"], "Scheduled", "{t}");
    t
}

fn get_trigger(s: &Server, token: &str, id: &str) -> Value {
    let (st, t) = s.call("GET", &format!("/v1/triggers/{id}"), Some(token), None);
    assert_eq!(st, 200, "{t}");
    t
}

fn set_enabled(s: &Server, token: &str, id: &str, on: bool) -> Value {
    let (st, t) = s.call(
        "PATCH",
        &format!("/v1/triggers/{id}"),
        Some(token),
        Some(json!({ "isEnabled": on })),
    );
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["isEnabled"], on, "{t}");
    t
}

/// Every asynchronous invocation of `function`, all pages.
fn invocations(s: &Server, token: &str, function: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(n) => format!("/v1/functions/{function}/invocations?limit=1000&nextToken={n}"),
            None => format!("/v1/functions/{function}/invocations?limit=1000"),
        };
        let (st, page) = s.call("GET", &path, Some(token), None);
        assert_eq!(st, 200, "{page}");
        all.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["nextToken"].as_str() {
            Some(n) => next = Some(n.to_owned()),
            None => return all,
        }
    }
}

/// The event an invocation carries (its base64 `payload`).
fn event_of(inv: &Value) -> Value {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(inv["payload"].as_str().unwrap_or_else(|| panic!("{inv}")))
        .unwrap();
    serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("payload is not JSON ({e}): {inv}"))
}

/// A function's invocations with their events, ordered by the event's time.
fn fired(s: &Server, token: &str, function: &str) -> Vec<(Value, Value)> {
    let mut v: Vec<(Value, Value)> = invocations(s, token, function)
        .into_iter()
        .map(|i| (event_of(&i), i))
        .collect();
    v.sort_by(|a, b| {
        a.0["time"]
            .as_str()
            .cmp(&b.0["time"].as_str())
            .then(ts(&a.1["createdAt"]).cmp(&ts(&b.1["createdAt"])))
    });
    v
}

fn times(f: &[(Value, Value)]) -> Vec<String> {
    f.iter()
        .map(|(e, _)| e["time"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until `f` gives `Some`, panicking with `what` after `within`.
fn wait_for<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until every invocation of `function` has ended; returns them.
fn wait_all_final(
    s: &Server,
    token: &str,
    function: &str,
    within: Duration,
) -> Vec<(Value, Value)> {
    wait_for(within, "every invocation ends", || {
        let f = fired(s, token, function);
        f.iter()
            .all(|(_, i)| matches!(i["status"].as_str(), Some("Succeeded" | "Failed")))
            .then_some(f)
    })
}

/// The `scheduler` entry of `GET /v1/status`.
fn scheduler_task(s: &Server) -> Value {
    let (st, status) = s.admin("GET", "/v1/status", None);
    assert_eq!(st, 200, "{status}");
    status["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks in /v1/status: {status}"))
        .iter()
        .find(|t| t["name"] == "scheduler")
        .unwrap_or_else(|| panic!("no scheduler task: {status}"))
        .clone()
}

/// The EventBridge event of one tick, apart from its id and time.
fn assert_scheduled_event(e: &Value, owner: &str, trigger_id: &str) {
    assert_eq!(e["version"], "0", "{e}");
    assert_eq!(e["detail-type"], "Scheduled Event", "{e}");
    assert_eq!(e["source"], "aws.events", "{e}");
    assert_eq!(e["account"], owner, "{e}");
    assert_eq!(e["region"], "local", "{e}");
    assert_eq!(
        e["resources"],
        json!([format!(
            "arn:hotswap:scheduler:local:{owner}:schedule/{trigger_id}"
        )]),
        "{e}"
    );
    assert_eq!(e["detail"], json!({}), "{e}");
}

/// A function `tick` of alice's on `functions` and a `rate(1 second)`
/// schedule of it created through `triggers`: (alice's token, the trigger).
fn tick_every_second(functions: &Server, triggers: &Server) -> (String, Value) {
    tick_schedule(functions, triggers, "rate(1 second)")
}

/// Alice's function `tick` on `functions`, scheduled by `expression`
/// through `triggers`: (alice's token, the trigger).
fn tick_schedule(functions: &Server, triggers: &Server, expression: &str) -> (String, Value) {
    let alice = functions.token_for("alice");
    create_function(functions, &alice, "tick", "app.echo");
    let t = create_schedule(
        triggers,
        &alice,
        "tick",
        json!({ "scheduleExpression": expression }),
    );
    (alice, t)
}

#[test]
fn a_rate_schedule_fires_each_tick_on_time_with_the_ticks_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let (alice, t) = tick_schedule(&s, &s, "rate(2 seconds)");
    let id = t["triggerId"].as_str().unwrap().to_owned();
    let created = ts(&t["createdAt"]);
    assert_eq!(ts(&t["nextRunAt"]), tick(created, 2, 1), "{t}");
    assert_eq!(t["state"]["status"], "idle", "{t}");
    assert_eq!(t["executionCount"], 0, "{t}");

    sleep_until(created + chrono::Duration::seconds(9));
    let before = Utc::now();
    let got = fired(&s, &alice, "tick");
    let after = Utc::now();
    // The events' times are exactly the first ticks, in order, none twice;
    // every tick due a second before the listing has fired, none that was
    // not due yet.
    let n = got.len();
    let expected: Vec<String> = (1..=n as i64).map(|k| secs(tick(created, 2, k))).collect();
    assert_eq!(times(&got), expected, "created {created}");
    let due = ticks_in(created, 2, created, before - chrono::Duration::seconds(1)).len();
    let possible = ticks_in(created, 2, created, after).len();
    assert!(
        (due..=possible).contains(&n),
        "{n} ticks fired in {:?}, expected {due}..={possible}",
        before - created
    );
    assert!(n >= 4, "4 ticks in 9 s, got {n}");

    let got = wait_all_final(&s, &alice, "tick", Duration::from_secs(30));
    for (k, (e, inv)) in got.iter().take(n).enumerate() {
        let scheduled = tick(created, 2, k as i64 + 1);
        assert_scheduled_event(e, "alice", &id);
        assert_eq!(e["id"], inv["requestId"], "{inv}");
        assert_eq!(inv["status"], "Succeeded", "{inv}");
        // Queued at (not before) its tick, and promptly: the event names the
        // scheduled time, not the (later) firing time.
        let queued = ts(&inv["createdAt"]);
        assert!(
            queued >= scheduled && queued - scheduled < chrono::Duration::milliseconds(1500),
            "tick {scheduled} queued at {queued}"
        );
        // The function received exactly that event (it returns it).
        let (st, result) = s.call(
            "GET",
            &format!("/v1/invocations/{}", inv["requestId"].as_str().unwrap()),
            Some(&alice),
            None,
        );
        assert_eq!(st, 200, "{result}");
        let body: Value = serde_json::from_str(result["body"].as_str().unwrap()).unwrap();
        assert_eq!(&body, e, "the function got the stored event");
        assert_eq!(body["time"], secs(scheduled));
        assert_eq!(body["detail-type"], "Scheduled Event");
    }

    // The stored run count moves with each claim (same transaction as the
    // invocation): read around a listing, it brackets the count.
    let t1 = get_trigger(&s, &alice, &id);
    let count = invocations(&s, &alice, "tick").len() as u64;
    let now = Utc::now();
    let t2 = get_trigger(&s, &alice, &id);
    let (c1, c2) = (
        t1["executionCount"].as_u64().unwrap(),
        t2["executionCount"].as_u64().unwrap(),
    );
    assert!(c1 <= count && count <= c2, "{c1} <= {count} <= {c2}");
    assert_eq!(t2["failureCount"], 0, "{t2}");
    let last_run = ts(&t2["lastExecutedAt"]);
    assert!(
        last_run > tick(created, 2, n as i64) && last_run <= Utc::now(),
        "{t2}"
    );
    let next = ts(&t2["nextRunAt"]);
    assert!(is_tick(created, 2, next), "nextRunAt {next} is not a tick");
    assert!(
        next > now - chrono::Duration::milliseconds(100)
            && next <= now + chrono::Duration::seconds(2),
        "nextRunAt {next} at {now}"
    );
    assert_eq!(t2["state"]["status"], "active", "{t2}");
    assert_eq!(t2["state"]["lastError"], Value::Null, "{t2}");
    assert!(
        t2["state"]["succeeded"].as_u64().unwrap() >= c1,
        "ticks queued by this server: {t2}"
    );
    assert_eq!(t2["state"]["failed"], 0, "{t2}");
    assert_eq!(t2["state"]["skipped"], 0, "{t2}");

    let task = scheduler_task(&s);
    assert!(
        task["runs"].as_u64().unwrap() >= 20,
        "the scheduler polls every 250 ms: {task}"
    );
    assert_eq!(task["lastError"], Value::Null, "{task}");
}

#[test]
fn a_disabled_schedule_stops_and_resumes_without_replaying() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let (alice, t) = tick_schedule(&s, &s, "rate(2 seconds)");
    let id = t["triggerId"].as_str().unwrap().to_owned();
    let created = ts(&t["createdAt"]);
    let half = chrono::Duration::seconds(1);
    wait_for(Duration::from_secs(10), "a first tick", || {
        (!invocations(&s, &alice, "tick").is_empty()).then_some(())
    });

    // Disable halfway between two ticks.
    sleep_until(next_tick(created, 2, Utc::now()) - half);
    let off = set_enabled(&s, &alice, &id, false);
    let disabled_at = Utc::now();
    assert_eq!(off["nextRunAt"], Value::Null, "{off}");
    assert_eq!(off["state"]["status"], "disabled", "{off}");
    let before = times(&fired(&s, &alice, "tick"));
    assert_eq!(
        before,
        ticks_in(created, 2, created, disabled_at)
            .into_iter()
            .map(secs)
            .collect::<Vec<_>>(),
        "every tick before the disable fired, once"
    );

    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        times(&fired(&s, &alice, "tick")),
        before,
        "no tick fires while disabled"
    );
    let t = get_trigger(&s, &alice, &id);
    assert_eq!(t["isEnabled"], false, "{t}");
    assert_eq!(t["nextRunAt"], Value::Null, "{t}");
    assert_eq!(t["state"]["status"], "disabled", "{t}");
    assert_eq!(t["executionCount"], before.len(), "{t}");

    // Enable halfway between two ticks: it resumes at the next tick, and
    // the ticks that passed while disabled are not replayed.
    sleep_until(next_tick(created, 2, Utc::now()) - half);
    let on = set_enabled(&s, &alice, &id, true);
    let enabled_at = Utc::now();
    let next = next_tick(created, 2, enabled_at);
    assert_eq!(ts(&on["nextRunAt"]), next, "{on}");
    sleep_until(next + chrono::Duration::milliseconds(1500));
    let after = times(&fired(&s, &alice, "tick"));
    let mut expected = before.clone();
    expected.push(secs(next));
    assert_eq!(
        after, expected,
        "disabled {disabled_at}, enabled {enabled_at}: only the ticks after the enable fire"
    );
    let got = wait_all_final(&s, &alice, "tick", Duration::from_secs(30));
    assert!(
        got.iter().all(|(_, i)| i["status"] == "Succeeded"),
        "{got:?}"
    );
}

#[test]
fn deleting_the_function_deletes_its_schedules() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");
    create_function(&s, &alice, "doomed", "app.echo");
    let t = create_schedule(
        &s,
        &alice,
        "doomed",
        json!({ "scheduleExpression": "rate(1 second)" }),
    );
    let id = t["triggerId"].as_str().unwrap().to_owned();
    wait_for(Duration::from_secs(10), "two ticks", || {
        (invocations(&s, &alice, "doomed").len() >= 2).then_some(())
    });

    let (st, b) = s.call("DELETE", "/v1/functions/doomed", Some(&alice), None);
    assert_eq!(st, 204, "{b}");
    let (st, b) = s.call("GET", &format!("/v1/triggers/{id}"), Some(&alice), None);
    assert_eq!(st, 404, "the schedule went with its function: {b}");
    let (st, list) = s.call("GET", "/v1/triggers", Some(&alice), None);
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["items"], json!([]), "{list}");

    // A new function under the same name inherits nothing: no trigger, and
    // the old schedule fires nothing for it.
    create_function(&s, &alice, "doomed", "app.echo");
    let (st, list) = s.call(
        "GET",
        "/v1/triggers?functionName=doomed",
        Some(&alice),
        None,
    );
    assert_eq!((st, &list["items"]), (200, &json!([])), "{list}");
    let seen = invocations(&s, &alice, "doomed").len();
    std::thread::sleep(Duration::from_secs(4));
    let later = fired(&s, &alice, "doomed");
    assert_eq!(
        later.len(),
        seen,
        "no tick fired after the delete: {:?}",
        times(&later)
    );
    let task = scheduler_task(&s);
    assert_eq!(task["lastError"], Value::Null, "{task}");
}

/// What two servers sharing one PostgreSQL database need: the database, a
/// shared blob directory (both run the same code) and a data directory each.
fn pg_pair() -> (
    PgDb,
    tempfile::TempDir,
    tempfile::TempDir,
    tempfile::TempDir,
) {
    (
        PgDb::create(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    )
}

fn pg_server(db: &PgDb, blobs: &tempfile::TempDir, dir: &tempfile::TempDir) -> Server {
    Server::start_with(
        dir.path(),
        ServerOptions {
            database_url: Some(db.url.clone()),
            extra_args: vec![
                "--blob-url".into(),
                format!("file://{}", blobs.path().display()),
                "--async-lease-grace".into(),
                "2s".into(),
            ],
            ..ServerOptions::default()
        },
    )
}

#[test]
fn servers_sharing_postgres_fire_each_tick_exactly_once() {
    let (db, blobs, dir_a, dir_b) = pg_pair();
    let a = pg_server(&db, &blobs, &dir_a);
    let b = pg_server(&db, &blobs, &dir_b);
    // Created on B: A learns of it from the store.
    let (alice, t) = tick_every_second(&a, &b);
    let id = t["triggerId"].as_str().unwrap().to_owned();
    let created = ts(&t["createdAt"]);

    // Phase 1: both servers run the schedule for 32 ticks.
    sleep_until(tick(created, 1, 32) + chrono::Duration::milliseconds(700));
    set_enabled(&b, &alice, &id, false);
    std::thread::sleep(Duration::from_millis(1500)); // A re-reads within 1 s
    let got = fired(&a, &alice, "tick");
    let phase1 = times(&got);
    let n = phase1.len();
    assert!(n >= 32, "32 ticks in 32 s, got {n}: {phase1:?}");
    let expected: Vec<String> = (1..=n as i64).map(|k| secs(tick(created, 1, k))).collect();
    assert_eq!(
        phase1, expected,
        "every tick from the first to the last, each once"
    );
    for (e, inv) in &got {
        assert_scheduled_event(e, "alice", &id);
        assert_eq!(e["id"], inv["requestId"]);
    }
    assert_eq!(
        times(&fired(&b, &alice, "tick")),
        phase1,
        "both servers list the same"
    );
    let (ta, tb) = (get_trigger(&a, &alice, &id), get_trigger(&b, &alice, &id));
    assert_eq!(ta["executionCount"], n, "{ta}");
    assert_eq!(tb["executionCount"], n, "{tb}");
    let (qa, qb) = (
        ta["state"]["succeeded"].as_u64().unwrap(),
        tb["state"]["succeeded"].as_u64().unwrap(),
    );
    assert_eq!(
        qa + qb,
        n as u64,
        "ticks queued by A ({qa}) and by B ({qb}) add up to the ticks"
    );

    // Phase 2: enabled again, then A is killed; B alone fires each tick once.
    let on = set_enabled(&a, &alice, &id, true);
    let enabled_at = Utc::now();
    assert!(ts(&on["nextRunAt"]) > enabled_at, "{on}");
    std::thread::sleep(Duration::from_secs(3));
    a.stop(); // SIGKILL
    let killed_at = Utc::now();
    sleep_until(killed_at + chrono::Duration::seconds(8));
    set_enabled(&b, &alice, &id, false);
    let stopped_at = Utc::now();
    let got = wait_all_final(&b, &alice, "tick", Duration::from_secs(60));
    let all = times(&got);
    let phase2: Vec<String> = all[n..].to_vec();
    assert_eq!(all[..n], phase1[..], "{all:?}");
    let first = next_tick(created, 1, enabled_at - chrono::Duration::milliseconds(300));
    let expected: Vec<String> =
        ticks_in(created, 1, first - chrono::Duration::seconds(1), stopped_at)
            .into_iter()
            .map(secs)
            .collect();
    // The tick due while the enable was being written may or may not fire;
    // after it, every tick until the disable fires exactly once.
    let expected_tail: Vec<String> = expected[1..].to_vec();
    let tail = if phase2.first() == expected.first() {
        &phase2[1..]
    } else {
        &phase2[..]
    };
    assert_eq!(
        tail,
        &expected_tail[..tail.len().min(expected_tail.len())],
        "enabled {enabled_at}, A killed {killed_at}, disabled {stopped_at}: {phase2:?}"
    );
    assert!(
        tail.len() + 1 >= expected_tail.len(),
        "ticks up to the disable fired: {phase2:?}, expected {expected_tail:?}"
    );
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "no tick twice: {all:?}");
    assert!(
        got.iter().all(|(_, i)| i["status"] == "Succeeded"),
        "every tick ran (B runs what A left): {got:?}"
    );
    let last = ts(&json!(all.last().unwrap()));
    assert!(
        last >= killed_at + chrono::Duration::seconds(6),
        "ticks kept coming after the kill: last {last}, kill {killed_at}"
    );
    let tb = get_trigger(&b, &alice, &id);
    assert_eq!(tb["executionCount"], all.len(), "{tb}");
    assert_eq!(scheduler_task(&b)["lastError"], Value::Null);
}

/// Disables the schedule (through `via`) 200 ms before each of four ticks
/// and re-enables it 1.8 s later; returns the ticks that fired although
/// they were due after the disable had been answered.
fn ticks_after_disables(via: &Server, token: &str, id: &str, created: Ts) -> Vec<String> {
    let mut late = Vec::new();
    for _ in 0..4 {
        let due = next_tick(created, 1, Utc::now() + chrono::Duration::milliseconds(400));
        sleep_until(due - chrono::Duration::milliseconds(200));
        set_enabled(via, token, id, false);
        let disabled_at = Utc::now();
        std::thread::sleep(Duration::from_millis(1800));
        let enabling = Utc::now();
        let seen: BTreeSet<String> = times(&fired(via, token, "tick")).into_iter().collect();
        for t in ticks_in(created, 1, disabled_at, enabling) {
            if seen.contains(&secs(t)) {
                late.push(format!(
                    "tick {t} fired after the disable answered at {disabled_at}"
                ));
            }
        }
        set_enabled(via, token, id, true);
        std::thread::sleep(Duration::from_millis(1500));
    }
    late
}

#[test]
fn a_disable_just_before_a_tick_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    assert_disables_stop_ticks(&s);
}

/// A `rate(1 second)` schedule created through `via`, disabled (through
/// `via`) just before each of four ticks: none of those ticks fires.
fn assert_disables_stop_ticks(via: &Server) {
    let (alice, t) = tick_every_second(via, via);
    let id = t["triggerId"].as_str().unwrap().to_owned();
    wait_for(Duration::from_secs(10), "two ticks", || {
        (invocations(via, &alice, "tick").len() >= 2).then_some(())
    });
    let late = ticks_after_disables(via, &alice, &id, ts(&t["createdAt"]));
    assert!(late.is_empty(), "{late:#?}");
}

/// A disable written on one server holds for every server from the moment
/// it is answered: no tick scheduled after it fires anywhere.
#[test]
fn disabling_on_one_server_stops_the_ticks_of_every_server() {
    let (db, blobs, dir_a, dir_b) = pg_pair();
    let a = pg_server(&db, &blobs, &dir_a);
    let _b = pg_server(&db, &blobs, &dir_b);
    // B learns of each change only from the store (it re-reads every
    // second); its claims check the trigger is still enabled.
    assert_disables_stop_ticks(&a);
}

#[test]
fn a_tick_whose_function_fails_counts_as_a_trigger_failure() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");
    create_function(&s, &alice, "fails", "app.boom");
    // A one-time schedule, three seconds from now.
    let at = (Utc::now() + chrono::Duration::seconds(3))
        .with_timezone(&Utc)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let t = create_schedule(
        &s,
        &alice,
        "fails",
        json!({ "scheduleExpression": format!("at({at})") }),
    );
    let id = t["triggerId"].as_str().unwrap().to_owned();
    let when: Ts = format!("{at}Z").parse().unwrap();
    assert_eq!(ts(&t["nextRunAt"]), when, "{t}");

    // The first attempt and two retries (1 s, then 2 s later) fail.
    let got = wait_for(Duration::from_secs(40), "the tick's final failure", || {
        let f = fired(&s, &alice, "fails");
        (!f.is_empty() && f.iter().all(|(_, i)| i["status"] == "Failed")).then_some(f)
    });
    assert_eq!(got.len(), 1, "{got:?}");
    let (e, inv) = &got[0];
    assert_scheduled_event(e, "alice", &id);
    assert_eq!(e["time"], secs(when));
    assert_eq!(inv["status"], "Failed", "{inv}");
    assert_eq!(inv["attempts"], 3, "{inv}");
    assert_eq!(inv["result"]["errorType"], "RuntimeError", "{inv}");

    let t = wait_for(Duration::from_secs(10), "failureCount 1", || {
        let t = get_trigger(&s, &alice, &id);
        (t["failureCount"] == 1).then_some(t)
    });
    assert_eq!(t["executionCount"], 1, "{t}");
    assert_eq!(
        t["nextRunAt"],
        Value::Null,
        "a one-time schedule is done: {t}"
    );
    assert!(ts(&t["lastExecutedAt"]) >= when, "{t}");
    std::thread::sleep(Duration::from_secs(2));
    let t = get_trigger(&s, &alice, &id);
    assert_eq!(
        (t["executionCount"].as_u64(), t["failureCount"].as_u64()),
        (Some(1), Some(1)),
        "one tick, one failure: {t}"
    );
    assert_eq!(invocations(&s, &alice, "fails").len(), 1);
}

#[test]
fn the_cli_prints_a_sample_event_and_a_schedules_next_run() {
    let before = Utc::now();
    let run = Run::from_output(
        cli_command("http://127.0.0.1:9", None, &["event", "schedule"])
            .output()
            .unwrap(),
    );
    let after = Utc::now();
    assert_eq!(run.code, 0, "{run:?}");
    let e = run.json();
    assert_eq!(e["detail-type"], "Scheduled Event", "{e}");
    assert_eq!(e["source"], "aws.events", "{e}");
    assert_eq!(e["version"], "0", "{e}");
    assert_eq!(e["detail"], json!({}), "{e}");
    let time = ts(&e["time"]);
    assert_eq!(time.timestamp() % 60, 0, "the minute's tick: {e}");
    assert!(
        time <= after && before - time < chrono::Duration::seconds(60),
        "{e}"
    );

    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");
    create_function(&s, &alice, "report", "app.echo");
    let run = Run::from_output(
        cli_command(
            &s.url,
            Some(&alice),
            &[
                "trigger",
                "create",
                "report",
                "--type",
                "scheduled",
                "--schedule",
                "rate(5 minutes)",
            ],
        )
        .output()
        .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let row = |out: &str, key: &str| -> String {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no {key} row: {out}"))
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let id = row(&run.stdout, "triggerId");
    let t = get_trigger(&s, &alice, &id);
    let next = tick(ts(&t["createdAt"]), 300, 1);
    assert_eq!(ts(&t["nextRunAt"]), next, "{t}");
    assert_eq!(row(&run.stdout, "nextRunAt"), secs(next), "{}", run.stdout);
    assert_eq!(
        row(&run.stdout, "config.scheduleExpression"),
        "rate(5 minutes)"
    );

    // The list shows it in its NEXT RUN column.
    let run = Run::from_output(
        cli_command(&s.url, Some(&alice), &["trigger", "list"])
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} not listed: {run:?}"));
    assert!(
        line.contains(&next.format("%Y-%m-%d %H:%M:%S").to_string())
            && line.contains("rate(5 minutes)"),
        "{}",
        run.stdout
    );

    // As JSON, the same instant; disabled, it says so.
    let run = Run::from_output(
        cli_command(&s.url, Some(&alice), &["trigger", "get", &id, "-o", "json"])
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(ts(&run.json()["nextRunAt"]), next, "{run:?}");
    let run = Run::from_output(
        cli_command(&s.url, Some(&alice), &["trigger", "disable", &id])
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(row(&run.stdout, "nextRunAt"), "- (disabled)", "{run:?}");
}

/// Europe/Paris's UTC offset (hours) on `date` at a daytime hour: summer
/// time from the last Sunday of March to the last Sunday of October.
fn paris_offset(date: NaiveDate) -> i64 {
    let last_sunday = |month: u32| {
        let mut d = NaiveDate::from_ymd_opt(date.year(), month, 31).unwrap();
        while d.weekday() != Weekday::Sun {
            d = d.pred_opt().unwrap();
        }
        d
    };
    if date >= last_sunday(3) && date < last_sunday(10) {
        2
    } else {
        1
    }
}

/// The first instant after `now` whose wall-clock time in a zone with the
/// given daily offset is `hh:mm`.
fn next_daily(now: Ts, hh: u32, mm: u32, offset: impl Fn(NaiveDate) -> i64) -> Ts {
    let today = now.date_naive();
    (-1..3)
        .map(|d| today + chrono::Duration::days(d))
        .map(|day| {
            Utc.from_utc_datetime(&day.and_hms_opt(hh, mm, 0).unwrap())
                - chrono::Duration::hours(offset(day))
        })
        .find(|t| *t > now)
        .unwrap()
}

#[test]
fn cron_and_at_schedules_run_in_their_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let alice = s.token_for("alice");
    create_function(&s, &alice, "report", "app.echo");
    let next_run = |config: Value| -> (Ts, Ts, Value) {
        let before = Utc::now();
        let t = create_schedule(&s, &alice, "report", config);
        let after = Utc::now();
        (before, after, t)
    };
    let check = |config: Value, expected: &dyn Fn(Ts) -> Ts| {
        let (before, after, t) = next_run(config.clone());
        let got = ts(&t["nextRunAt"]);
        // The expectation at the instant of creation: computed at both ends
        // of the request (they differ only across a tick).
        assert!(
            got == expected(before) || got == expected(after),
            "{config}: nextRunAt {got}, expected {} ({t})",
            expected(before)
        );
        // The same when read back.
        let again = get_trigger(&s, &alice, t["triggerId"].as_str().unwrap());
        assert_eq!(again["nextRunAt"], t["nextRunAt"], "{again}");
        t
    };

    // 12:00 in Tokyo (UTC+9, no daylight saving) is 03:00Z.
    check(
        json!({ "scheduleExpression": "cron(0 12 * * ? *)", "timezone": "Asia/Tokyo" }),
        &|now| next_daily(now, 12, 0, |_| 9),
    );
    // 08:30 in Paris: 06:30Z in summer, 07:30Z in winter.
    let t = check(
        json!({ "scheduleExpression": "cron(30 8 * * ? *)", "timezone": "Europe/Paris" }),
        &|now| next_daily(now, 8, 30, paris_offset),
    );
    assert_eq!(t["config"]["timezone"], "Europe/Paris", "{t}");
    // The same expression without a zone is UTC.
    check(
        json!({ "scheduleExpression": "cron(30 8 * * ? *)" }),
        &|now| next_daily(now, 8, 30, |_| 0),
    );
    // Every minute, at second 0.
    check(
        json!({ "scheduleExpression": "cron(0/1 * * * ? *)", "timezone": "Europe/Paris" }),
        &|now| {
            Utc.timestamp_opt(now.timestamp() - now.timestamp().rem_euclid(60) + 60, 0)
                .unwrap()
        },
    );
    // Weekdays only: 09:00 Tokyo, Monday to Friday (AWS day-of-week 2-6).
    check(
        json!({ "scheduleExpression": "cron(0 9 ? * MON-FRI *)", "timezone": "Asia/Tokyo" }),
        &|now| {
            let mut t = now;
            loop {
                let n = next_daily(t, 9, 0, |_| 9);
                let local = n + chrono::Duration::hours(9);
                if !matches!(local.weekday(), Weekday::Sat | Weekday::Sun) {
                    return n;
                }
                t = n;
            }
        },
    );
    // One-time schedules: the local time in the zone, UTC by default.
    check(
        json!({ "scheduleExpression": "at(2030-01-01T00:00:00)", "timezone": "Asia/Tokyo" }),
        &|_| "2029-12-31T15:00:00Z".parse().unwrap(),
    );
    check(
        json!({ "scheduleExpression": "at(2030-07-01T12:00:00)", "timezone": "Europe/Paris" }),
        &|_| "2030-07-01T10:00:00Z".parse().unwrap(),
    );
    check(
        json!({ "scheduleExpression": "at(2030-01-01T00:00:00)" }),
        &|_| "2030-01-01T00:00:00Z".parse().unwrap(),
    );
    // A time already past never runs.
    let t = create_schedule(
        &s,
        &alice,
        "report",
        json!({ "scheduleExpression": "at(2020-01-01T00:00:00)" }),
    );
    assert_eq!(t["nextRunAt"], Value::Null, "{t}");
}

#[test]
fn late_ticks_keep_their_time_and_older_ones_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || ServerOptions {
        extra_args: vec!["--schedule-max-lateness".into(), "3s".into()],
        ..Default::default()
    };
    let s = Server::start_with(dir.path(), opts());
    let (alice, t) = tick_every_second(&s, &s);
    let id = t["triggerId"].as_str().unwrap().to_owned();
    let created = ts(&t["createdAt"]);
    wait_for(Duration::from_secs(10), "two ticks", || {
        (invocations(&s, &alice, "tick").len() >= 2).then_some(())
    });
    s.stop(); // SIGKILL
    let killed_at = Utc::now();
    std::thread::sleep(Duration::from_secs(7));
    let restarting = Utc::now();
    let s = Server::start_with(dir.path(), opts());
    let listening = Utc::now();
    sleep_until(listening + chrono::Duration::seconds(3));
    let got = wait_all_final(&s, &alice, "tick", Duration::from_secs(30));
    let seen = times(&got);
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no tick twice: {seen:?}");
    let all: Vec<Ts> = ticks_in(
        created,
        1,
        created,
        ts(&got.last().unwrap().0["time"]) + chrono::Duration::seconds(1),
    );
    let fired_ticks: Vec<Ts> = all
        .iter()
        .copied()
        .filter(|t| seen.contains(&secs(*t)))
        .collect();
    assert_eq!(
        fired_ticks.len(),
        seen.len(),
        "every event time is a tick: {seen:?}"
    );
    let missing: Vec<Ts> = all
        .iter()
        .copied()
        .filter(|t| !seen.contains(&secs(*t)))
        .collect();
    // Ticks older than 3 s when the server came back were skipped; those
    // within 3 s fired, late, with their own time.
    let floor_lo = restarting - chrono::Duration::seconds(3);
    let floor_hi = listening + chrono::Duration::seconds(1) - chrono::Duration::seconds(3);
    assert!(
        !missing.is_empty(),
        "the server was down 7 s with a 3 s lateness: ticks were skipped"
    );
    for m in &missing {
        assert!(
            *m > killed_at - chrono::Duration::seconds(1) && *m < floor_hi,
            "tick {m} is missing (killed {killed_at}, back {listening}): {seen:?}"
        );
    }
    assert!(
        missing.iter().any(|m| *m < floor_lo),
        "the down time's ticks were skipped: {missing:?}"
    );
    let late: Vec<(String, chrono::Duration)> = got
        .iter()
        .map(|(e, i)| {
            let t = all.iter().find(|t| secs(**t) == e["time"]).unwrap();
            (secs(*t), ts(&i["createdAt"]) - *t)
        })
        .filter(|(_, d)| *d > chrono::Duration::milliseconds(1500))
        .collect();
    assert!(
        !late.is_empty(),
        "ticks from before the restart fire late, with their scheduled time"
    );
    for (tick_time, lateness) in &late {
        assert!(
            *lateness <= chrono::Duration::seconds(5),
            "{tick_time} fired {lateness} late, beyond the allowed 3 s"
        );
    }
    assert!(
        got.iter().all(|(_, i)| i["status"] == "Succeeded"),
        "{got:?}"
    );
    let t = get_trigger(&s, &alice, &id);
    assert_eq!(t["state"]["skipped"], 1, "one gap skipped: {t}");
}
