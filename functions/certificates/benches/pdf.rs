//! Rendering a certificate's PDF (`printpdf`, and `qrcode` for its QR code), release build:
//! `cargo bench -p alphalab-certificates --bench pdf`. Prints the PDF's size once.

use alphalab_certificates::pdf::{Content, render};
use criterion::{Criterion, criterion_group, criterion_main};

fn content() -> Content {
    Content {
        agent_name: "Momentum Hunter v3".into(),
        model: "anthropic/claude-sonnet-4.5".into(),
        mode: "omni".into(),
        kind: "backtest".into(),
        asset: "BTCUSDT".into(),
        timeframe: "1h".into(),
        total_return_pct: 3213.7049,
        win_rate_pct: Some(41.37),
        total_trades: 1482,
        max_drawdown_pct: Some(37.12),
        start: "2017-08-17".into(),
        end: "2022-10-11".into(),
        issued: "2026-12-04".into(),
        verification_code: "7K3M-Q9XD-2HTP-8WNB".into(),
        share_url: "https://app.alphalab.example/verify/7K3M-Q9XD-2HTP-8WNB".into(),
        evidence_grade: Some("C".into()),
        verdict: Some(
            "97th percentile of 1,000 random agents with the same trades: better than chance \
             (p = 0.031); does not beat buy & hold (-12.40 points, p = 0.412)"
                .into(),
        ),
    }
}

fn pdf(c: &mut Criterion) {
    let content = content();
    let bytes = render(&content).expect("rendering");
    println!("certificate PDF: {} bytes", bytes.len());
    c.bench_function("certificate_pdf", |b| {
        b.iter(|| render(std::hint::black_box(&content)).expect("rendering"))
    });
}

criterion_group!(benches, pdf);
criterion_main!(benches);
