use super::*;

fn valid() -> Function {
    Function::new(
        "image-processor",
        Runtime::Python311,
        "handler.process_image",
        "user-123",
    )
}

fn errors(f: &Function) -> Vec<String> {
    f.validate()
        .err()
        .map(|e| e.into_messages())
        .unwrap_or_default()
}

#[test]
fn defaults_match_seed() {
    let f = valid();
    assert_eq!(f.memory_size, 256);
    assert_eq!(f.timeout, 30);
    assert_eq!(f.total_invocations, 0);
    assert!(f.published_version.is_none());
    assert!(f.last_invoked_at.is_none());
    assert_eq!(f.scaling_config, ScalingConfig::default());
    assert!(f.is_valid());
}

#[test]
fn name_rules() {
    let mut f = valid();
    f.name = "a".repeat(64);
    assert!(f.is_valid());
    f.name = "a".repeat(65);
    assert_eq!(
        errors(&f),
        vec!["Name must be alphanumeric with dashes, max 64 characters"]
    );
    f.name = "   ".into();
    assert_eq!(errors(&f), vec!["Name is required"]);
    f.name = "bad_name".into();
    assert_eq!(
        errors(&f),
        vec!["Name must be alphanumeric with dashes, max 64 characters"]
    );
}

#[test]
fn handler_required() {
    let mut f = valid();
    f.handler = " ".into();
    assert_eq!(errors(&f), vec!["Handler is required"]);
}

#[test]
fn memory_limits() {
    let mut f = valid();
    for ok in [128, 192, 1024, 10_240] {
        f.memory_size = ok;
        assert!(f.is_valid(), "{ok} should be valid");
    }
    for bad in [0, 64, 127, 129, 130, 10_241, 10_304, 200] {
        f.memory_size = bad;
        assert_eq!(
            errors(&f),
            vec!["MemorySize must be 128-10240 MB in 64 MB increments"],
            "{bad}"
        );
    }
}

#[test]
fn timeout_limits() {
    let mut f = valid();
    for ok in [1, 900] {
        f.timeout = ok;
        assert!(f.is_valid());
    }
    for bad in [0, 901] {
        f.timeout = bad;
        assert_eq!(errors(&f), vec!["Timeout must be 1-900 seconds"]);
    }
}

#[test]
fn layer_limit() {
    let mut f = valid();
    f.layers = (0..5).map(|i| format!("layer-{i}")).collect();
    assert!(f.is_valid());
    f.layers.push("layer-5".into());
    assert_eq!(errors(&f), vec!["Maximum 5 layers allowed"]);
}

#[test]
fn environment_limit() {
    let mut f = valid();
    // key "K" (1 byte) + value of 4095 bytes = 4096: allowed
    f.environment.insert("K".into(), "v".repeat(4095));
    assert!(f.is_valid());
    f.environment.insert("K".into(), "v".repeat(4096));
    assert_eq!(errors(&f), vec!["Environment variables exceed 4 KB limit"]);
}

#[test]
fn layer_references() {
    let mut f = valid();
    f.layers = vec!["deps".into(), "utils:3".into()];
    assert!(f.is_valid());
    f.layers = vec!["deps".into(), "deps:2".into()];
    assert_eq!(errors(&f), vec!["A layer may be attached only once"]);
    f.layers = vec!["bad_name".into()];
    assert_eq!(errors(&f).len(), 1);
}

#[test]
fn environment_key_syntax() {
    let mut f = valid();
    f.environment.insert("1BAD".into(), "x".into());
    assert_eq!(errors(&f).len(), 1);
}

#[test]
fn all_errors_at_once() {
    let mut f = valid();
    f.name = String::new();
    f.handler = String::new();
    f.memory_size = 100;
    f.timeout = 0;
    f.layers = (1..=6).map(|i| format!("l{i}")).collect();
    f.environment.insert("BIG".into(), "x".repeat(5000));
    assert_eq!(
        errors(&f),
        vec![
            "Name is required",
            "Handler is required",
            "MemorySize must be 128-10240 MB in 64 MB increments",
            "Timeout must be 1-900 seconds",
            "Maximum 5 layers allowed",
            "Environment variables exceed 4 KB limit",
        ]
    );
}

#[test]
fn cpu_allocation_scales_with_memory() {
    let mut f = valid();
    f.memory_size = 1792;
    assert_eq!(f.cpu_allocation(), 1.0);
    f.memory_size = 128;
    assert!((f.cpu_allocation() - 128.0 / 1792.0).abs() < 1e-12);
    f.memory_size = 10_240;
    assert!((f.cpu_allocation() - 5.714_285).abs() < 1e-5);
}

#[test]
fn json_uses_seed_names() {
    let v = serde_json::to_value(valid()).unwrap();
    for key in [
        "name",
        "description",
        "runtime",
        "handler",
        "memorySize",
        "timeout",
        "environment",
        "layers",
        "vpcConfig",
        "tags",
        "publishedVersion",
        "ownerId",
        "createdAt",
        "updatedAt",
        "totalInvocations",
        "lastInvokedAt",
        "scalingConfig",
        "functionId",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["runtime"], "Python311");
    let back: Function = serde_json::from_value(v).unwrap();
    assert_eq!(back, valid_with_times(&back));
}

fn valid_with_times(f: &Function) -> Function {
    let mut v = valid();
    v.function_id = f.function_id.clone();
    v.created_at = f.created_at;
    v.updated_at = f.updated_at;
    v
}
