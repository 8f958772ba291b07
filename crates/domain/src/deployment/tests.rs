use super::*;

fn dep() -> Deployment {
    Deployment::new(
        "f",
        "prod",
        Some(1),
        2,
        DeploymentStrategy::Canary,
        DeploymentConfig::default(),
        "alice",
    )
}

#[test]
fn defaults_match_seed() {
    let d = dep();
    assert_eq!(d.status, DeploymentStatus::Pending);
    assert_eq!(d.progress, 0.0);
    assert!(d.completed_at.is_none());
    assert_eq!(DeploymentStrategy::default(), DeploymentStrategy::AllAtOnce);
    assert_eq!(d.deployment_id.len(), 36);
}

#[test]
fn marks() {
    let mut d = dep();
    d.mark_completed();
    assert_eq!(d.status, DeploymentStatus::Completed);
    assert_eq!(d.progress, 100.0);
    assert!(d.completed_at.is_some());
    assert!(d.can_rollback());

    let mut d = dep();
    d.mark_failed("boom");
    assert_eq!(d.status, DeploymentStatus::Failed);
    assert_eq!(d.error_message.as_deref(), Some("boom"));
    assert!(!d.can_rollback());

    let mut d = dep();
    d.mark_rolled_back("error rate 31% > 5% at step 1");
    assert_eq!(d.status, DeploymentStatus::RolledBack);
    assert_eq!(
        d.rollback_reason.as_deref(),
        Some("error rate 31% > 5% at step 1")
    );
}

#[test]
fn can_rollback_needs_source() {
    let mut d = dep();
    d.source_version = None;
    d.mark_completed();
    assert!(!d.can_rollback());
}

#[test]
fn state_machine() {
    let mut d = dep();
    assert!(d.start("canary 10%").is_ok());
    assert_eq!(d.status, DeploymentStatus::InProgress);
    assert!(d.start("again").is_err());
    d.cancel(Some("user".into())).unwrap();
    assert_eq!(d.status, DeploymentStatus::Cancelled);
    assert!(d.cancel(None).is_err());
    assert!(d.try_mark(DeploymentStatus::Completed, "").is_err());
    assert!(DeploymentStatus::Pending.is_active());
    assert!(DeploymentStatus::InProgress.is_active());
    assert!(DeploymentStatus::RolledBack.is_terminal());
}

#[test]
fn config_validation() {
    use DeploymentStrategy::*;
    let ok = DeploymentConfig {
        canary_percentage: Some(10.0),
        canary_duration: Some(Duration::from_secs(300)),
        rollback_on_error_rate: Some(5.0),
        rollback_on_latency_p99: Some(250.0),
        rollback_on_success_rate: Some(95.0),
        ..Default::default()
    };
    assert!(ok.validate(Canary).is_empty());
    assert_eq!(
        ok.validate(AllAtOnce).messages(),
        ["Canary settings do not apply to the AllAtOnce strategy"]
    );

    let bad = DeploymentConfig {
        canary_percentage: Some(100.0),
        canary_increments: Some(vec![10.0, 5.0]),
        rollback_on_error_rate: Some(101.0),
        rollback_on_latency_p99: Some(0.0),
        rollback_on_success_rate: Some(-1.0),
        canary_duration: Some(Duration::ZERO),
        ..Default::default()
    };
    assert_eq!(bad.validate(Canary).messages().len(), 6);

    let rolling = DeploymentConfig {
        batch_size: Some(0.25),
        ..Default::default()
    };
    assert!(rolling.validate(Rolling).is_empty());
    let rolling = DeploymentConfig {
        batch_size: Some(2.0),
        ..Default::default()
    };
    assert!(rolling.validate(Rolling).is_empty());
    let rolling = DeploymentConfig {
        batch_size: Some(1.5),
        ..Default::default()
    };
    assert_eq!(rolling.validate(Rolling).messages().len(), 1);
    let bg = DeploymentConfig {
        keep_blue: Some(true),
        ..Default::default()
    };
    assert!(bg.validate(BlueGreen).is_empty());
    assert_eq!(bg.validate(Rolling).messages().len(), 1);
}

#[test]
fn canary_steps() {
    assert_eq!(
        DeploymentConfig::default().canary_steps(),
        vec![10.0, 100.0]
    );
    let c = DeploymentConfig {
        canary_percentage: Some(25.0),
        ..Default::default()
    };
    assert_eq!(c.canary_steps(), vec![25.0, 100.0]);
    let c = DeploymentConfig {
        canary_increments: Some(vec![10.0, 25.0, 50.0, 100.0]),
        ..Default::default()
    };
    assert_eq!(c.canary_steps(), vec![10.0, 25.0, 50.0, 100.0]);
}

#[test]
fn config_json() {
    let c: DeploymentConfig = serde_json::from_str(
        r#"{"canaryPercentage":10,"canaryDuration":"5m","rollbackOnLatencyP99":300,"rollbackOnErrorRate":5}"#,
    )
    .unwrap();
    assert_eq!(c.canary_duration, Some(Duration::from_secs(300)));
    assert_eq!(c.rollback_on_latency_p99, Some(300.0));
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["canaryDuration"], 300);
    assert!(serde_json::from_str::<DeploymentConfig>(r#"{"canaryPercent":10}"#).is_err());
}

#[test]
fn enum_parsing() {
    assert_eq!(
        "canary".parse::<DeploymentStrategy>().unwrap(),
        DeploymentStrategy::Canary
    );
    assert_eq!(
        "all-at-once".parse::<DeploymentStrategy>().unwrap(),
        DeploymentStrategy::AllAtOnce
    );
    assert_eq!(
        "abtesting".parse::<DeploymentStrategy>().unwrap(),
        DeploymentStrategy::ABTesting
    );
    assert!("yolo".parse::<DeploymentStrategy>().is_err());
    assert_eq!(
        serde_json::to_string(&DeploymentStatus::RolledBack).unwrap(),
        "\"RolledBack\""
    );
}
