//! The engine's command line: `backtest` and `indicators` on the bundled real data.

use std::process::Command;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/market");

fn alphalab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_alphalab"))
        .args(args)
        .output()
        .expect("running alphalab")
}

#[test]
fn the_documented_sma_cross_backtest_prints_its_documented_metrics_and_trades() {
    let trades = std::env::temp_dir().join(format!("alphalab-trades-{}.csv", std::process::id()));
    let csv = format!("{DATA}/BTCUSDT-1h.csv");
    let out = alphalab(&[
        "backtest",
        "--csv",
        &csv,
        "--agent",
        "baseline/sma-cross",
        "--fee-bps",
        "0",
        "--slippage-bps",
        "0",
        "--trades-out",
        trades.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = include_str!("../expected/backtest-btcusdt-1h-sma-cross.json");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);

    let metrics: serde_json::Value = serde_json::from_str(expected).unwrap();
    let mut reader = csv::Reader::from_path(&trades).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(
        rows.len() as u64,
        metrics["metrics"]["total_trades"].as_u64().unwrap()
    );
    let pnl: f64 = rows.iter().map(|r| r[10].parse::<f64>().unwrap()).sum();
    let final_equity = metrics["metrics"]["final_equity"].as_f64().unwrap();
    assert!((10_000.0 + pnl - final_equity).abs() < 1e-6 * final_equity);
    let _ = std::fs::remove_file(trades);
}

#[test]
fn fees_slippage_and_options_change_the_result() {
    let csv = format!("{DATA}/ETHUSDT-1d.csv");
    let run = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "backtest",
            "--csv",
            &csv,
            "--agent",
            "baseline/rsi-reversion",
        ];
        args.extend_from_slice(extra);
        let out = alphalab(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let free = run(&["--fee-bps", "0", "--slippage-bps", "0"]);
    let paid = run(&[]);
    assert_eq!(paid["timeframe"], "1d");
    assert!(paid["metrics"]["fees_paid"].as_f64().unwrap() > 0.0);
    assert!(
        paid["metrics"]["final_equity"].as_f64().unwrap()
            < free["metrics"]["final_equity"].as_f64().unwrap()
    );
    let monk = run(&["--mode", "monk", "--safety", "--capital", "5000"]);
    assert_eq!(monk["metrics"]["initial_capital"], 5000.0);
    let hold = {
        let out = alphalab(&[
            "backtest",
            "--csv",
            &csv,
            "--agent",
            "baseline/buy-and-hold",
            "--with-curve",
        ]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_eq!(hold["metrics"]["total_trades"], 1);
    assert!(hold["metrics"]["equity_curve"].as_array().unwrap().len() <= 1000);
}

#[test]
fn bad_arguments_fail_with_a_clear_message() {
    let csv = format!("{DATA}/BTCUSDT-1d.csv");
    for (args, message) in [
        (
            vec!["backtest", "--csv", &csv, "--agent", "openai/gpt-4o"],
            "[possible values: baseline/buy-and-hold, baseline/sma-cross, baseline/rsi-reversion]",
        ),
        (
            vec!["backtest", "--csv", "/nonexistent.csv"],
            "reading /nonexistent.csv",
        ),
        (
            vec!["backtest", "--csv", &csv, "--leverage", "9"],
            "9 is not in 1..=5",
        ),
        (
            vec!["backtest", "--csv", &csv, "--mode", "zen"],
            "[possible values: omni, monk]",
        ),
        (
            vec!["indicators", "--csv", &csv, "--indicators", "vwap"],
            "valid: rsi, rsi_N, macd",
        ),
    ] {
        let out = alphalab(&args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn indicators_writes_a_column_per_output_matching_ta_lib() {
    let csv = format!("{DATA}/BTCUSDT-1d.csv");
    let out = alphalab(&[
        "indicators",
        "--csv",
        &csv,
        "--indicators",
        "rsi_14,macd,stoch",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "time,rsi_14,macd,macd_signal,macd_histogram,stoch_k,stoch_d"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 1881);
    assert_eq!(rows[13][1], "", "RSI(14) is undefined before row 14");
    let golden = std::fs::read_to_string(format!("{DATA}/../golden/talib-BTCUSDT-1d.csv")).unwrap();
    for (row, g) in rows.iter().zip(golden.lines().skip(1)) {
        let g: Vec<&str> = g.split(',').collect();
        assert_eq!(row[0], g[0]);
        for (ours, theirs) in [(row[1], g[1]), (row[2], g[9]), (row[5], g[16])] {
            match (ours, theirs) {
                ("", "") => {}
                (a, b) => {
                    let (a, b): (f64, f64) = (a.parse().unwrap(), b.parse().unwrap());
                    assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} vs {b}");
                }
            }
        }
    }
}

#[test]
fn bad_choices_list_the_valid_values_and_negative_numbers_are_refused_with_a_reason() {
    let csv = format!("{DATA}/BTCUSDT-1d.csv");
    let fails = |extra: &[&str]| -> String {
        let mut args = vec!["backtest", "--csv", csv.as_str()];
        args.extend_from_slice(extra);
        let out = alphalab(&args);
        assert!(!out.status.success(), "{extra:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = fails(&["--mode", "zen"]);
    assert!(err.contains("[possible values: omni, monk]"), "{err}");
    let err = fails(&["--timeframe", "2h"]);
    assert!(err.contains("1m, 5m, 15m, 1h, 4h, 1d"), "{err}");
    let err = fails(&["--agent", "gpt"]);
    assert!(err.contains("baseline/sma-cross"), "{err}");
    let err = fails(&["--capital", "-5"]);
    assert!(err.contains("must be greater than 0"), "{err}");
    let err = fails(&["--fee-bps", "-1"]);
    assert!(err.contains("must be between 0 and 1000"), "{err}");
    let err = fails(&["--leverage", "-2"]);
    assert!(err.contains("1..=5"), "{err}");
}

#[test]
fn the_trades_file_lands_where_asked_even_in_a_new_directory() {
    let dir = std::env::temp_dir().join(format!("alphalab-cli-{}/nested", std::process::id()));
    let file = dir.join("trades.csv");
    let out = alphalab(&[
        "backtest",
        "--csv",
        &format!("{DATA}/BTCUSDT-1d.csv"),
        "--trades-out",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(file.is_file());
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[test]
fn the_committed_openapi_document_is_the_one_the_code_generates() {
    let out = alphalab(&["openapi"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).unwrap();
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json"))
            .unwrap();
    assert!(
        generated == committed,
        "openapi.json is stale: run `cargo run --bin alphalab -- openapi > openapi.json` and \
         commit the diff (it is the contract clients build against)"
    );
    let doc: serde_json::Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/results/{id}/ledger"]["get"].is_object());
}
