//! Throughput over all 45,024 candles of BTCUSDT-1h:
//! (a) the default indicator set, (b) the full engine driven by `baseline/sma-cross`, and
//! (c) the same with every decision's reasoning rendered to text.
//!
//! `cargo bench -p alphalab-engine --bench engine`; criterion reports the time per iteration
//! (45,024 candles) and the throughput in candles per second; ns per candle = 1e9 / throughput.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::baseline::{Baseline, Kind};
use engine::indicators::DEFAULT_SET;
use engine::{Candle, Engine, EngineConfig, IndicatorSet, Timeframe, parse_csv};

fn candles() -> Vec<Candle> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/market/BTCUSDT-1h.csv"
    );
    parse_csv(&std::fs::read_to_string(path).expect("BTCUSDT-1h.csv")).expect("valid data")
}

fn sma_cross_config() -> EngineConfig {
    let mut config = EngineConfig::new("BTCUSDT", Timeframe::H1);
    config.indicators.extend(
        Kind::SmaCross
            .required_indicators()
            .iter()
            .map(|s| s.to_string()),
    );
    config
}

fn run_engine(candles: &[Candle], render: bool) -> f64 {
    let mut engine = Engine::new(sma_cross_config()).expect("engine");
    let baseline = Baseline::new(Kind::SmaCross, engine.indicators()).expect("baseline");
    let mut text_len = 0usize;
    for candle in candles {
        let applied = if render {
            engine.step(*candle, |ctx| {
                let decision = baseline.decide(ctx);
                text_len += decision.reasoning.text().len();
                decision
            })
        } else {
            // returned straight from the decider: built in place, no copy
            engine.step(*candle, |ctx| baseline.decide(ctx))
        };
        applied.expect("candle");
    }
    let (_, metrics) = engine.finish().expect("finish");
    metrics.final_equity + text_len as f64
}

fn bench(c: &mut Criterion) {
    let candles = candles();
    assert_eq!(candles.len(), 45_024);
    let mut group = c.benchmark_group("btcusdt_1h_45024");
    group.throughput(Throughput::Elements(candles.len() as u64));
    group.sample_size(30);

    group.bench_function("indicators_default_set", |b| {
        b.iter(|| {
            let mut set = IndicatorSet::new(DEFAULT_SET).expect("set");
            for candle in &candles {
                set.update(black_box(candle));
            }
            black_box(set.values()[0])
        })
    });
    group.bench_function("engine_sma_cross", |b| {
        b.iter(|| black_box(run_engine(black_box(&candles), false)))
    });
    group.bench_function("engine_sma_cross_with_reasoning_text", |b| {
        b.iter(|| black_box(run_engine(black_box(&candles), true)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
