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
    assert_eq!(
        errs(&t),
        vec![
            "StreamArn is required for Stream triggers",
            "Source is required for Stream triggers (nats, redis or kafka)",
            "StartingPosition is required for Stream triggers (TRIM_HORIZON, LATEST or AT_TIMESTAMP)",
        ]
    );
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
        source: Some(TriggerSource::Nats),
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
        vec!["Queue settings do not apply to Http triggers (QueueName)"]
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

fn queue(c: TriggerConfig) -> Trigger {
    trig(
        TriggerType::Queue,
        TriggerConfig {
            queue_name: Some("jobs".into()),
            ..c
        },
    )
}

fn stream(c: TriggerConfig) -> Trigger {
    trig(
        TriggerType::Stream,
        TriggerConfig {
            stream_arn: Some("clicks".into()),
            source: c.source.or(Some(TriggerSource::Redis)),
            starting_position: c.starting_position.clone().or(Some("LATEST".into())),
            ..c
        },
    )
}

#[test]
fn queue_settings_fill_every_default() {
    let t = queue(TriggerConfig::default());
    assert!(t.is_valid());
    assert_eq!(
        t.config.queue_settings().unwrap(),
        QueueSettings {
            queue_name: "jobs".into(),
            source: TriggerSource::Embedded,
            batch_size: 10,
            maximum_batching_window_s: 0,
            visibility_timeout_s: 30,
            max_receive_count: 3,
            report_batch_item_failures: false,
            maximum_concurrency: None,
            dead_letter_target: None,
        }
    );
}

#[test]
fn queue_settings_take_the_config() {
    let c = TriggerConfig {
        source: Some(TriggerSource::Rabbitmq),
        batch_size: Some(50),
        maximum_batching_window: Some(5),
        visibility_timeout: Some(120),
        max_receive_count: Some(7),
        report_batch_item_failures: Some(true),
        maximum_concurrency: Some(4),
        dead_letter_target: Some("fn:audit:prod".into()),
        ..Default::default()
    };
    let s = queue(c).config.queue_settings().unwrap();
    assert_eq!(s.source, TriggerSource::Rabbitmq);
    assert_eq!(s.batch_size, 50);
    assert_eq!(s.batching_window(), std::time::Duration::from_secs(5));
    assert_eq!(s.max_receive_count, 7);
    assert!(s.report_batch_item_failures);
    assert_eq!(s.maximum_concurrency, Some(4));
    assert_eq!(
        s.dead_letter_target,
        Some(DeliveryTarget::Function {
            name: "audit".into(),
            qualifier: crate::Qualifier::Alias("prod".into())
        })
    );
    // Never shorter than the function may run.
    assert_eq!(s.visibility_timeout_for(60).as_secs(), 120);
    assert_eq!(s.visibility_timeout_for(300).as_secs(), 300);
}

#[test]
fn settings_refuse_an_invalid_config() {
    let c = TriggerConfig {
        queue_name: Some("jobs".into()),
        max_receive_count: Some(0),
        ..Default::default()
    };
    assert_eq!(
        c.queue_settings().unwrap_err().into_messages(),
        vec!["MaxReceiveCount must be 1-1000"]
    );
    // A queue config is not a stream config.
    assert!(c.stream_settings().is_err());
    assert!(TriggerConfig::default().queue_settings().is_err());
}

#[test]
fn queue_sources() {
    for s in TriggerSource::QUEUE {
        let c = TriggerConfig {
            source: Some(s),
            ..Default::default()
        };
        assert!(queue(c).is_valid(), "{s}");
    }
    let c = TriggerConfig {
        source: Some(TriggerSource::Kafka),
        ..Default::default()
    };
    assert_eq!(
        errs(&queue(c)),
        vec!["Source 'kafka' does not serve Queue triggers (embedded, rabbitmq, nats or redis)"]
    );
}

#[test]
fn queue_ranges() {
    let cases: Vec<(TriggerConfig, &str)> = vec![
        (
            TriggerConfig {
                maximum_batching_window: Some(301),
                ..Default::default()
            },
            "MaximumBatchingWindow must be 0-300 seconds",
        ),
        (
            TriggerConfig {
                max_receive_count: Some(0),
                ..Default::default()
            },
            "MaxReceiveCount must be 1-1000",
        ),
        (
            TriggerConfig {
                max_receive_count: Some(1001),
                ..Default::default()
            },
            "MaxReceiveCount must be 1-1000",
        ),
        (
            TriggerConfig {
                maximum_concurrency: Some(1),
                ..Default::default()
            },
            "MaximumConcurrency must be 2-1000",
        ),
        (
            TriggerConfig {
                maximum_concurrency: Some(1001),
                ..Default::default()
            },
            "MaximumConcurrency must be 2-1000",
        ),
    ];
    for (c, msg) in cases {
        assert_eq!(errs(&queue(c)), vec![msg]);
    }
    let edges = TriggerConfig {
        maximum_batching_window: Some(300),
        max_receive_count: Some(1000),
        maximum_concurrency: Some(2),
        report_batch_item_failures: Some(true),
        ..Default::default()
    };
    assert!(queue(edges).is_valid());
    let edges = TriggerConfig {
        maximum_batching_window: Some(0),
        max_receive_count: Some(1),
        maximum_concurrency: Some(1000),
        ..Default::default()
    };
    assert!(queue(edges).is_valid());
}

#[test]
fn dead_letter_targets() {
    let dlt = |t: &str| TriggerConfig {
        dead_letter_target: Some(t.into()),
        ..Default::default()
    };
    assert!(queue(dlt("fn:audit")).is_valid());
    assert!(queue(dlt("fn:audit:3")).is_valid());
    assert!(queue(dlt("queue:jobs-dlq")).is_valid());
    let e = errs(&queue(dlt("audit")));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("DeadLetterTarget 'audit' must be fn:NAME[:QUALIFIER]"),
        "{e:?}"
    );
    assert_eq!(
        errs(&queue(dlt("fn:image-processor:prod"))),
        vec!["DeadLetterTarget must name another function, not this one"]
    );
    assert_eq!(
        errs(&queue(dlt("queue:jobs"))),
        vec!["DeadLetterTarget must name another queue, not this one"]
    );
    // The same name on another broker is another queue.
    let c = TriggerConfig {
        source: Some(TriggerSource::Redis),
        ..dlt("queue:jobs")
    };
    assert!(queue(c).is_valid());
}

#[test]
fn stream_settings_fill_every_default() {
    let t = stream(TriggerConfig::default());
    assert!(t.is_valid(), "{:?}", errs(&t));
    assert_eq!(
        t.config.stream_settings().unwrap(),
        StreamSettings {
            stream: "clicks".into(),
            source: TriggerSource::Redis,
            starting_position: StartingPosition::Latest,
            batch_size: 100,
            parallelization_factor: 1,
            bisect_batch_on_function_error: false,
            maximum_retry_attempts: None,
            maximum_record_age_s: None,
            report_batch_item_failures: false,
            on_failure: None,
        }
    );
}

#[test]
fn stream_settings_take_the_config() {
    let c = TriggerConfig {
        source: Some(TriggerSource::Kafka),
        starting_position: Some("AT_TIMESTAMP".into()),
        starting_position_timestamp: Some("2030-01-01T02:00:00+02:00".into()),
        batch_size: Some(10),
        parallelization_factor: Some(4),
        bisect_batch_on_function_error: Some(true),
        maximum_retry_attempts: Some(2),
        maximum_record_age_in_seconds: Some(3600),
        report_batch_item_failures: Some(true),
        on_failure: Some("queue:clicks-failed".into()),
        ..Default::default()
    };
    let s = stream(c).config.stream_settings().unwrap();
    assert_eq!(s.source, TriggerSource::Kafka);
    assert_eq!(
        s.starting_position,
        StartingPosition::AtTimestamp("2030-01-01T00:00:00Z".parse().unwrap())
    );
    assert_eq!(s.starting_position.as_str(), "AT_TIMESTAMP");
    assert_eq!((s.batch_size, s.parallelization_factor), (10, 4));
    assert!(s.bisect_batch_on_function_error && s.report_batch_item_failures);
    assert_eq!(s.maximum_retry_attempts, Some(2));
    assert_eq!(
        s.maximum_record_age(),
        Some(std::time::Duration::from_secs(3600))
    );
    assert_eq!(
        s.on_failure,
        Some(DeliveryTarget::Queue {
            name: "clicks-failed".into()
        })
    );
    let c = TriggerConfig {
        starting_position: Some("TRIM_HORIZON".into()),
        maximum_retry_attempts: Some(-1),
        maximum_record_age_in_seconds: Some(-1),
        ..Default::default()
    };
    let s = stream(c).config.stream_settings().unwrap();
    assert_eq!(s.starting_position, StartingPosition::TrimHorizon);
    assert_eq!(
        (s.maximum_retry_attempts, s.maximum_record_age()),
        (None, None)
    );
}

#[test]
fn stream_sources_and_positions() {
    for s in TriggerSource::STREAM {
        let c = TriggerConfig {
            source: Some(s),
            ..Default::default()
        };
        assert!(stream(c).is_valid(), "{s}");
    }
    for s in [TriggerSource::Embedded, TriggerSource::Rabbitmq] {
        let c = TriggerConfig {
            source: Some(s),
            ..Default::default()
        };
        assert_eq!(
            errs(&stream(c)),
            vec![format!(
                "Source '{s}' does not serve Stream triggers (nats, redis or kafka)"
            )]
        );
    }
    let at = |p: &str, ts: Option<&str>| TriggerConfig {
        starting_position: Some(p.into()),
        starting_position_timestamp: ts.map(Into::into),
        ..Default::default()
    };
    assert!(stream(at("AT_TIMESTAMP", Some("2030-01-01T00:00:00Z"))).is_valid());
    assert_eq!(
        errs(&stream(at("AT_TIMESTAMP", None))),
        vec!["StartingPositionTimestamp is required when StartingPosition is AT_TIMESTAMP"]
    );
    assert_eq!(
        errs(&stream(at("LATEST", Some("2030-01-01T00:00:00Z")))),
        vec!["StartingPositionTimestamp applies only when StartingPosition is AT_TIMESTAMP"]
    );
    assert_eq!(
        errs(&stream(at("AT_TIMESTAMP", Some("2030-01-01")))),
        vec![
            "StartingPositionTimestamp must be an RFC 3339 date-time, such as 2030-01-01T00:00:00Z"
        ]
    );
}

#[test]
fn stream_ranges() {
    let retry = |n: i32| TriggerConfig {
        maximum_retry_attempts: Some(n),
        ..Default::default()
    };
    for ok in [-1, 0, 10_000] {
        assert!(stream(retry(ok)).is_valid(), "{ok}");
    }
    for bad in [-2, 10_001] {
        assert_eq!(
            errs(&stream(retry(bad))),
            vec!["MaximumRetryAttempts must be -1 (until the records expire) or 0-10000"]
        );
    }
    let age = |n: i32| TriggerConfig {
        maximum_record_age_in_seconds: Some(n),
        ..Default::default()
    };
    for ok in [-1, 60, 604_800] {
        assert!(stream(age(ok)).is_valid(), "{ok}");
    }
    for bad in [0, 59, 604_801, -5] {
        assert_eq!(
            errs(&stream(age(bad))),
            vec!["MaximumRecordAgeInSeconds must be -1 (no limit) or 60-604800"]
        );
    }
    let on_failure = |t: &str| TriggerConfig {
        on_failure: Some(t.into()),
        ..Default::default()
    };
    assert!(stream(on_failure("fn:audit")).is_valid());
    assert!(stream(on_failure("queue:clicks")).is_valid());
    assert!(errs(&stream(on_failure("sns:x")))[0].starts_with("OnFailure 'sns:x' must be"));
    assert_eq!(
        errs(&stream(on_failure("fn:image-processor"))),
        vec!["OnFailure must name another function, not this one"]
    );
}

#[test]
fn settings_of_the_other_type_are_refused() {
    let c = TriggerConfig {
        maximum_batching_window: Some(1),
        dead_letter_target: Some("fn:audit".into()),
        ..Default::default()
    };
    assert_eq!(
        errs(&stream(c)),
        vec!["Queue settings do not apply to Stream triggers (MaximumBatchingWindow, DeadLetterTarget)"]
    );
    let c = TriggerConfig {
        bisect_batch_on_function_error: Some(false),
        on_failure: Some("fn:audit".into()),
        ..Default::default()
    };
    assert_eq!(
        errs(&queue(c)),
        vec!["Stream settings do not apply to Queue triggers (BisectBatchOnFunctionError, OnFailure)"]
    );
    let c = TriggerConfig {
        http_path: Some("/x".into()),
        source: Some(TriggerSource::Nats),
        batch_size: Some(1),
        report_batch_item_failures: Some(true),
        ..Default::default()
    };
    assert_eq!(
        errs(&trig(TriggerType::Http, c)),
        vec![
            "Source does not apply to Http triggers",
            "BatchSize does not apply to Http triggers",
            "ReportBatchItemFailures does not apply to Http triggers"
        ]
    );
}

#[test]
fn config_json_names_are_the_contract() {
    let v = serde_json::json!({
        "queueName": "q", "source": "rabbitmq", "batchSize": 5,
        "maximumBatchingWindow": 2, "visibilityTimeout": 60, "maxReceiveCount": 4,
        "reportBatchItemFailures": true, "maximumConcurrency": 3,
        "deadLetterTarget": "queue:dlq"
    });
    let c: TriggerConfig = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(c.source, Some(TriggerSource::Rabbitmq));
    assert_eq!(
        serde_json::to_value(&c)
            .unwrap()
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| !v.is_null())
            .count(),
        9
    );
    let v = serde_json::json!({
        "streamArn": "s", "source": "kafka", "startingPosition": "AT_TIMESTAMP",
        "startingPositionTimestamp": "2030-01-01T00:00:00Z", "parallelizationFactor": 2,
        "bisectBatchOnFunctionError": true, "maximumRetryAttempts": -1,
        "maximumRecordAgeInSeconds": -1, "onFailure": "fn:x"
    });
    let c: TriggerConfig = serde_json::from_value(v).unwrap();
    assert_eq!(c.maximum_retry_attempts, Some(-1));
    assert_eq!(c.on_failure.as_deref(), Some("fn:x"));
    // Unknown fields and unknown sources stay refused.
    assert!(serde_json::from_value::<TriggerConfig>(
        serde_json::json!({"maximumBatchingWindowInSeconds": 1})
    )
    .is_err());
    assert!(serde_json::from_value::<TriggerConfig>(serde_json::json!({"source": "sqs"})).is_err());
    // A trigger stored before these fields existed still loads.
    let old: TriggerConfig = serde_json::from_value(serde_json::json!({
        "queueName": "jobs", "batchSize": 10, "visibilityTimeout": 60
    }))
    .unwrap();
    assert_eq!(
        old.queue_settings().unwrap().source,
        TriggerSource::Embedded
    );
}
