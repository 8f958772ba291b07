//! Alias resolution: the weighted choice the router makes for every request.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use hotswap_domain::{FunctionAlias, Qualifier};

fn routing(c: &mut Criterion) {
    let plain = FunctionAlias::new("f", "prod", 5);
    let mut weighted = FunctionAlias::new("f", "prod", 5);
    weighted.set_weighted_routing(5, 6, 10.0);
    let mut x = 0.0_f64;
    c.bench_function("alias_route_plain", |b| {
        b.iter(|| black_box(&plain).route_version(black_box(0.42)))
    });
    c.bench_function("alias_route_weighted_90_10", |b| {
        b.iter(|| {
            x = (x + 0.618_033_988_7) % 1.0;
            black_box(&weighted).route_version(black_box(x))
        })
    });
    c.bench_function("qualifier_parse_alias", |b| {
        b.iter(|| black_box("production").parse::<Qualifier>())
    });
    c.bench_function("qualifier_parse_version", |b| {
        b.iter(|| black_box("42").parse::<Qualifier>())
    });
}

criterion_group!(benches, routing);
criterion_main!(benches);
