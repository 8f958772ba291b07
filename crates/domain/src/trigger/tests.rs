use super::*;

fn trig(t: TriggerType, c: TriggerConfig) -> Trigger {
    Trigger::new("image-processor", t, c)
}

fn errs(t: &Trigger) -> Vec<String> {
    t.validate()
        .err()
        .map(|e| e.into_messages())
        .unwrap_or_default()
}

#[test]
fn defaults_match_seed() {
    let t = trig(
        TriggerType::Http,
        TriggerConfig {
            http_path: Some("/api".into()),
            ..Default::default()
        },
    );
    assert_eq!(t.target_version, "$LATEST");
    assert!(t.is_enabled);
    assert_eq!(t.execution_count, 0);
    assert_eq!(t.failure_count, 0);
    assert!(t.last_executed_at.is_none());
    assert!(t.is_valid());
}

#[test]
fn seed_messages() {
    let mut t = trig(TriggerType::Http, TriggerConfig::default());
    t.function_name = " ".into();
    assert_eq!(
        errs(&t),
        vec![
            "FunctionName is required",
            "HttpPath is required for HTTP triggers"
        ]
    );
    let t = trig(TriggerType::Scheduled, TriggerConfig::default());
    assert_eq!(
        errs(&t),
        vec!["ScheduleExpression is required for Scheduled triggers"]
    );
    let t = trig(TriggerType::Queue, TriggerConfig::default());
    assert_eq!(errs(&t), vec!["QueueName is required for Queue triggers"]);
    let t = trig(TriggerType::Stream, TriggerConfig::default());
    assert_eq!(errs(&t), vec!["StreamArn is required for Stream triggers"]);
}

#[test]
fn http_rules() {
    let ok = TriggerConfig {
        http_path: Some("/api/process/{id}".into()),
        http_methods: Some(vec!["POST".into(), "get".into()]),
        cors_enabled: Some(true),
        ..Default::default()
    };
    assert!(trig(TriggerType::Http, ok).is_valid());
    for bad in ["api", "/a//b", "/a/../b", "/a b"] {
        let c = TriggerConfig {
            http_path: Some(bad.into()),
            ..Default::default()
        };
        assert_eq!(errs(&trig(TriggerType::Http, c)).len(), 1, "{bad}");
    }
    let c = TriggerConfig {
        http_path: Some("/x".into()),
        http_methods: Some(vec!["FETCH".into()]),
        ..Default::default()
    };
    assert_eq!(
        errs(&trig(TriggerType::Http, c)),
        vec!["HttpMethods: unknown method 'FETCH'"]
    );
}

#[test]
fn schedule_rules() {
    for ok in [
        "rate(5 minutes)",
        "rate(1 hour)",
        "rate(1 second)",
        "rate(30 seconds)",
        "cron(0 12 * * ? *)",
        "cron(15 10 ? * MON-FRI *)",
        "at(2030-01-01T00:00:00)",
    ] {
        let c = TriggerConfig {
            schedule_expression: Some(ok.into()),
            timezone: Some("Europe/Paris".into()),
            ..Default::default()
        };
        assert!(trig(TriggerType::Scheduled, c).is_valid(), "{ok}");
    }
    for bad in [
        "rate(0 minutes)",
        "rate(5 minute)",
        "rate(1 hours)",
        "rate(0 seconds)",
        "rate(1 seconds)",
        "rate(10 second)",
        "rate(5 secs)",
        "cron(0 12 * * *)",
        "cron(0 12 * * * *)",
        "every tuesday",
    ] {
        let c = TriggerConfig {
            schedule_expression: Some(bad.into()),
            ..Default::default()
        };
        assert_eq!(errs(&trig(TriggerType::Scheduled, c)).len(), 1, "{bad}");
    }
    let c = TriggerConfig {
        schedule_expression: Some("rate(1 day)".into()),
        timezone: Some("Mars/Olympus".into()),
        ..Default::default()
    };
    assert_eq!(
        errs(&trig(TriggerType::Scheduled, c)),
        vec!["Timezone 'Mars/Olympus' is not an IANA time zone name"]
    );
}

#[test]
fn queue_rules() {
    let q = |b: Option<u32>, v: Option<u32>| TriggerConfig {
        queue_name: Some("jobs".into()),
        batch_size: b,
        visibility_timeout: v,
        ..Default::default()
    };
    assert!(trig(TriggerType::Queue, q(Some(1), Some(0))).is_valid());
    assert!(trig(TriggerType::Queue, q(Some(10_000), Some(43_200))).is_valid());
    assert_eq!(
        errs(&trig(TriggerType::Queue, q(Some(0), None))),
        vec!["BatchSize must be 1-10000"]
    );
    assert_eq!(
        errs(&trig(TriggerType::Queue, q(Some(10_001), None))),
        vec!["BatchSize must be 1-10000"]
    );
    assert_eq!(
        errs(&trig(TriggerType::Queue, q(None, Some(43_201)))),
        vec!["VisibilityTimeout must be 0-43200 seconds"]
    );
}

#[test]
fn stream_rules() {
    let s = |p: &str, f: u32| TriggerConfig {
        stream_arn: Some("orders".into()),
        starting_position: Some(p.into()),
        parallelization_factor: Some(f),
        ..Default::default()
    };
    assert!(trig(TriggerType::Stream, s("TRIM_HORIZON", 1)).is_valid());
    assert!(trig(TriggerType::Stream, s("LATEST", 10)).is_valid());
    assert_eq!(
        errs(&trig(TriggerType::Stream, s("LATEST", 11))),
        vec!["ParallelizationFactor must be 1-10"]
    );
    assert_eq!(
        errs(&trig(TriggerType::Stream, s("LATEST", 0))),
        vec!["ParallelizationFactor must be 1-10"]
    );
    assert_eq!(errs(&trig(TriggerType::Stream, s("OLDEST", 1))).len(), 1);
}

#[test]
fn foreign_settings_refused() {
    let c = TriggerConfig {
        http_path: Some("/x".into()),
        queue_name: Some("q".into()),
        ..Default::default()
    };
    assert_eq!(
        errs(&trig(TriggerType::Http, c)),
        vec!["Queue settings do not apply to Http triggers"]
    );
}

#[test]
fn target_version_checked() {
    let mut t = trig(
        TriggerType::Queue,
        TriggerConfig {
            queue_name: Some("q".into()),
            ..Default::default()
        },
    );
    t.target_version = "prod".into();
    assert!(t.is_valid());
    t.target_version = "3".into();
    assert!(t.is_valid());
    t.target_version = "no spaces".into();
    assert_eq!(errs(&t).len(), 1);
}

#[test]
fn json_type_field() {
    let t = trig(
        TriggerType::Queue,
        TriggerConfig {
            queue_name: Some("q".into()),
            ..Default::default()
        },
    );
    let v = serde_json::to_value(&t).unwrap();
    assert_eq!(v["type"], "Queue");
    assert_eq!(v["config"]["queueName"], "q");
    assert_eq!(v["isEnabled"], true);
}

#[test]
fn http_route_shapes_ignore_parameter_names_and_trailing_slashes() {
    use crate::trigger::http_route_shape;
    assert_eq!(http_route_shape("/orders/{id}/"), "/orders/{}");
    assert_eq!(http_route_shape("/orders/{oid}"), "/orders/{}");
    assert_eq!(http_route_shape("/a/{proxy+}"), "/a/{+}");
    assert_eq!(http_route_shape("/"), "/");
    assert_ne!(
        http_route_shape("/orders/1"),
        http_route_shape("/orders/{id}")
    );
}

#[test]
fn http_paths_take_whole_segment_parameters_and_a_final_greedy_one() {
    let t = |p: &str| {
        trig(
            TriggerType::Http,
            TriggerConfig {
                http_path: Some(p.into()),
                ..Default::default()
            },
        )
    };
    for ok in ["/a/{id}/b", "/a/{proxy+}", "/{x}/{y}", "/a.b~c_d-e"] {
        assert!(t(ok).validate().is_ok(), "{ok}");
    }
    for bad in [
        "/a{b}", "/{a", "/{}", "/{p+}/x", "/{a}/{a}", "/{a b}", "/a/b+", "/a+b",
    ] {
        let e = errs(&t(bad));
        assert!(e.iter().any(|m| m.starts_with("HttpPath")), "{bad}: {e:?}");
    }
}

#[test]
fn http_routes_overlap_when_one_request_path_matches_both() {
    use crate::trigger::http_routes_overlap as o;
    assert!(o("/shop/{proxy+}", "/shop/checkout"));
    assert!(o("/shop/{id}", "/shop/checkout"));
    assert!(o("/a/{x}/c", "/a/b/{y}"));
    assert!(o("/{proxy+}", "/anything/at/all"));
    assert!(o("/a/", "/a"));
    assert!(
        !o("/shop/{proxy+}", "/shop"),
        "a greedy parameter needs a segment"
    );
    assert!(!o("/a/b", "/a/c"));
    assert!(!o("/a/{x}", "/a/b/c"));
    assert!(!o("/a", "/b/{proxy+}"));
}
