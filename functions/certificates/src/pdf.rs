//! The certificate as one A4 page (`printpdf`), in the seed's design: a `#0A0A0F` page with a
//! `#00D4FF` border, ALPHALAB and CERTIFICATE OF INTELLIGENCE, the agent, the headline figures,
//! the tested period, the certificate id and the verify link, all as real text in the built-in
//! Helvetica and Courier (extractable, nothing embedded), and a QR code of the share URL made
//! with `qrcode`, drawn as vector squares: dark modules on a light square with the 4-module
//! quiet zone, the symbol 110 pt wide.

use printpdf::{
    BuiltinFont, Color, Mm, Op, PaintMode, PdfDocument, PdfFontHandle, PdfPage, PdfSaveOptions,
    Point, Pt, Rect, Rgb, TextItem,
};
use qrcode::QrCode;
use serde_json::Value;

/// A4 in points.
const WIDTH: f32 = 595.28;
const HEIGHT: f32 = 841.89;
/// Width of the QR symbol, quiet zone excluded.
pub const QR_SYMBOL_PT: f32 = 110.0;
/// Modules of quiet zone around the symbol.
const QUIET: usize = 4;

const PAGE: (f32, f32, f32) = (
    0x0A as f32 / 255.0,
    0x0A as f32 / 255.0,
    0x0F as f32 / 255.0,
);
const CYAN: (f32, f32, f32) = (0.0, 0xD4 as f32 / 255.0, 1.0);
const WHITE: (f32, f32, f32) = (0.96, 0.97, 0.98);
const GREY: (f32, f32, f32) = (0.58, 0.62, 0.68);
const GREEN: (f32, f32, f32) = (0.20, 0.90, 0.55);
const RED: (f32, f32, f32) = (1.0, 0.36, 0.40);

fn color((r, g, b): (f32, f32, f32)) -> Color {
    Color::Rgb(Rgb {
        r,
        g,
        b,
        icc_profile: None,
    })
}

/// What the page shows, read from a certificate's snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub agent_name: String,
    pub model: String,
    pub mode: String,
    pub kind: String,
    pub asset: String,
    pub timeframe: String,
    pub total_return_pct: f64,
    pub win_rate_pct: Option<f64>,
    pub total_trades: i64,
    pub max_drawdown_pct: Option<f64>,
    pub start: String,
    pub end: String,
    pub issued: String,
    pub verification_code: String,
    pub share_url: String,
    /// Version 2: the methodology card's `evidence_grade` and the verdict's summary.
    pub evidence_grade: Option<String>,
    pub verdict: Option<String>,
}

impl Content {
    /// The page's content from a certificate's `snapshot` and `share_url`.
    pub fn from_snapshot(snapshot: &Value, share_url: &str) -> Self {
        let text = |k: &str| snapshot[k].as_str().unwrap_or("").to_owned();
        let date = |k: &str| {
            snapshot[k]
                .as_str()
                .map(|d| d.chars().take(10).collect())
                .unwrap_or_else(|| "-".into())
        };
        Self {
            agent_name: text("agent_name"),
            model: text("model"),
            mode: text("mode"),
            kind: text("type"),
            asset: text("asset"),
            timeframe: text("timeframe"),
            total_return_pct: snapshot["total_return_pct"].as_f64().unwrap_or(0.0),
            win_rate_pct: snapshot["win_rate_pct"].as_f64(),
            total_trades: snapshot["total_trades"].as_i64().unwrap_or(0),
            max_drawdown_pct: snapshot["max_drawdown_pct"].as_f64(),
            start: date("start_date"),
            end: date("end_date"),
            issued: date("issued_at"),
            verification_code: text("verification_code"),
            share_url: share_url.to_owned(),
            evidence_grade: snapshot["methodology"]["evidence_grade"]
                .as_str()
                .map(str::to_owned),
            verdict: snapshot["evidence"]["verdict"]["summary"]
                .as_str()
                .map(str::to_owned),
        }
    }
}

/// What an evidence grade means, in one line.
pub fn grade_line(grade: &str) -> String {
    let meaning = match grade {
        "A" => "a forward test on candles that closed after it started",
        "B" => "a backtest entirely after the model's training cutoff",
        "C" => "a backtest crossing the model's training cutoff",
        "D" => "a backtest before the model's training cutoff, or with an unknown cutoff",
        _ => return "Evidence grade: not applicable (a baseline agent, no model)".into(),
    };
    format!("Evidence grade {grade}: {meaning}")
}

/// `+3213.70%`: sign and two decimals.
pub fn signed_pct(x: f64) -> String {
    format!("{}{:.2}%", if x >= 0.0 { "+" } else { "" }, x)
}

fn title_case(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The built-in fonts encode Latin-1 only: anything else is shown as `?`.
fn latin1(s: &str) -> String {
    s.chars()
        .map(|c| {
            if (c as u32) < 0x100 && !c.is_control() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Advance widths (1/1000 em) of Helvetica and Helvetica-Bold for printable ASCII, from Adobe's
/// Core 14 font metrics; other characters count as a digit. Used to centre lines.
fn advance(c: char, bold: bool) -> f32 {
    const REGULAR: &[u16; 95] = &[
        278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556,
        556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722,
        722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722,
        667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556, 556, 278, 556,
        556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500,
        500, 334, 260, 334, 584,
    ];
    const BOLD: &[u16; 95] = &[
        278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556,
        556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, 975, 722, 722, 722,
        722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778, 667, 778, 722, 667, 611, 722,
        667, 944, 667, 667, 611, 333, 278, 333, 584, 556, 333, 556, 611, 556, 611, 556, 333, 611,
        611, 278, 278, 556, 278, 889, 611, 611, 611, 611, 389, 556, 333, 611, 556, 778, 556, 556,
        500, 389, 280, 389, 584,
    ];
    let table = if bold { BOLD } else { REGULAR };
    let i = c as usize;
    f32::from(if (32..127).contains(&i) {
        table[i - 32]
    } else {
        556
    })
}

struct Page {
    ops: Vec<Op>,
}

impl Page {
    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, fill: Option<(f32, f32, f32)>) {
        let mode = match fill {
            Some(c) => {
                self.ops.push(Op::SetFillColor { col: color(c) });
                PaintMode::Fill
            }
            None => PaintMode::Stroke,
        };
        self.ops.push(Op::DrawRectangle {
            rectangle: Rect {
                x: Pt(x),
                y: Pt(y),
                width: Pt(w),
                height: Pt(h),
                mode: Some(mode),
                winding_order: None,
            },
        });
    }

    fn border(&mut self, inset: f32, thickness: f32, c: (f32, f32, f32)) {
        self.ops.push(Op::SetOutlineColor { col: color(c) });
        self.ops.push(Op::SetOutlineThickness { pt: Pt(thickness) });
        self.rect(
            inset,
            inset,
            WIDTH - 2.0 * inset,
            HEIGHT - 2.0 * inset,
            None,
        );
    }

    fn text(&mut self, x: f32, y: f32, font: BuiltinFont, size: f32, c: (f32, f32, f32), s: &str) {
        self.ops.extend([
            Op::StartTextSection,
            Op::SetTextCursor {
                pos: Point { x: Pt(x), y: Pt(y) },
            },
            Op::SetFont {
                font: PdfFontHandle::Builtin(font),
                size: Pt(size),
            },
            Op::SetFillColor { col: color(c) },
            Op::ShowText {
                items: vec![TextItem::Text(latin1(s))],
            },
            Op::EndTextSection,
        ]);
    }

    /// `s` centred on `cx`.
    fn centred(&mut self, cx: f32, y: f32, bold: bool, size: f32, c: (f32, f32, f32), s: &str) {
        let s = latin1(s);
        let width: f32 = s.chars().map(|ch| advance(ch, bold)).sum::<f32>() * size / 1000.0;
        let font = if bold {
            BuiltinFont::HelveticaBold
        } else {
            BuiltinFont::Helvetica
        };
        self.text(cx - width / 2.0, y, font, size, c, &s);
    }

    /// A label over a value, centred on `cx`.
    fn figure(&mut self, cx: f32, y: f32, label: &str, value: &str) {
        self.centred(cx, y + 20.0, false, 9.0, GREY, label);
        self.centred(cx, y, true, 15.0, WHITE, value);
    }

    /// The QR code of `data`: a light square (quiet zone included) with `bottom` as its lower
    /// edge, centred on the page.
    fn qr(&mut self, data: &str, bottom: f32) -> Result<(), qrcode::types::QrError> {
        let code = QrCode::new(data.as_bytes())?;
        let n = code.width();
        let module = QR_SYMBOL_PT / n as f32;
        let side = module * (n + 2 * QUIET) as f32;
        let left = (WIDTH - side) / 2.0;
        self.rect(left, bottom, side, side, Some((1.0, 1.0, 1.0)));
        self.ops.push(Op::SetFillColor {
            col: color((0.0, 0.0, 0.0)),
        });
        let colors = code.to_colors();
        for row in 0..n {
            // one rectangle per run of dark modules in a row
            let mut col = 0;
            while col < n {
                if colors[row * n + col] != qrcode::Color::Dark {
                    col += 1;
                    continue;
                }
                let start = col;
                while col < n && colors[row * n + col] == qrcode::Color::Dark {
                    col += 1;
                }
                let x = left + module * (QUIET + start) as f32;
                // row 0 is the top
                let y = bottom + side - module * (QUIET + row + 1) as f32;
                self.ops.push(Op::DrawRectangle {
                    rectangle: Rect {
                        x: Pt(x),
                        y: Pt(y),
                        width: Pt(module * (col - start) as f32),
                        height: Pt(module),
                        mode: Some(PaintMode::Fill),
                        winding_order: None,
                    },
                });
            }
        }
        Ok(())
    }
}

/// The certificate's PDF.
pub fn render(c: &Content) -> Result<Vec<u8>, qrcode::types::QrError> {
    let mut page = Page { ops: Vec::new() };
    let cx = WIDTH / 2.0;
    page.ops.push(Op::SaveGraphicsState);
    page.rect(0.0, 0.0, WIDTH, HEIGHT, Some(PAGE));
    page.border(22.0, 2.5, CYAN);
    page.border(30.0, 0.6, CYAN);

    page.centred(cx, 748.0, true, 34.0, CYAN, "ALPHALAB");
    page.centred(cx, 718.0, true, 15.0, WHITE, "CERTIFICATE OF INTELLIGENCE");
    page.ops.push(Op::SetOutlineColor { col: color(CYAN) });
    page.ops.push(Op::SetOutlineThickness { pt: Pt(1.0) });
    page.rect(cx - 90.0, 702.0, 180.0, 0.01, None);

    page.centred(
        cx,
        668.0,
        false,
        11.0,
        GREY,
        "This certifies the verified performance of the AI trading agent",
    );
    page.centred(cx, 632.0, true, 26.0, WHITE, &c.agent_name);
    page.centred(
        cx,
        610.0,
        false,
        11.0,
        GREY,
        &format!("{}  -  {} mode", c.model, c.mode),
    );

    page.centred(cx, 566.0, false, 10.0, GREY, "TOTAL PNL");
    let pnl_color = if c.total_return_pct >= 0.0 {
        GREEN
    } else {
        RED
    };
    page.centred(
        cx,
        522.0,
        true,
        44.0,
        pnl_color,
        &signed_pct(c.total_return_pct),
    );

    let columns = [cx - 170.0, cx, cx + 170.0];
    let win = c.win_rate_pct.map_or("-".into(), |w| format!("{w:.2}%"));
    let drawdown = c
        .max_drawdown_pct
        .map_or("-".into(), |d| format!("{d:.2}%"));
    for (x, (label, value)) in columns.iter().zip([
        ("ASSET", c.asset.clone()),
        ("TEST TYPE", title_case(&c.kind)),
        ("MODE", title_case(&c.mode)),
    ]) {
        page.figure(*x, 440.0, label, &value);
    }
    for (x, (label, value)) in columns.iter().zip([
        ("WIN RATE", win),
        ("TOTAL TRADES", c.total_trades.to_string()),
        ("MAX DRAWDOWN", drawdown),
    ]) {
        page.figure(*x, 382.0, label, &value);
    }
    page.centred(
        cx,
        346.0,
        false,
        11.0,
        WHITE,
        &format!(
            "Tested period: {} to {} ({} candles)",
            c.start, c.end, c.timeframe
        ),
    );
    if let Some(grade) = &c.evidence_grade {
        page.centred(cx, 329.0, true, 9.0, CYAN, &grade_line(grade));
    }
    if let Some(verdict) = &c.verdict {
        // the chance part and the buy & hold part, one line each
        for (i, part) in verdict.splitn(2, "; ").enumerate() {
            page.centred(cx, 316.0 - 11.0 * i as f32, false, 8.0, GREY, part);
        }
    }

    page.qr(&c.share_url, 150.0)?;

    page.centred(
        cx,
        118.0,
        true,
        11.0,
        CYAN,
        &format!("Certificate ID: {}", c.verification_code),
    );
    page.centred(
        cx,
        100.0,
        false,
        9.0,
        WHITE,
        &format!("Verify: {}", c.share_url),
    );
    page.centred(
        cx,
        84.0,
        false,
        8.0,
        GREY,
        &format!(
            "Issued {}. Scan or open the link to check this certificate against the stored result.",
            c.issued
        ),
    );
    page.ops.push(Op::RestoreGraphicsState);

    let pdf = PdfPage::new(Mm(210.0), Mm(297.0), page.ops);
    let mut warnings = Vec::new();
    Ok(
        PdfDocument::new(&format!("AlphaLab certificate {}", c.verification_code))
            .with_pages(vec![pdf])
            .save(&PdfSaveOptions::default(), &mut warnings),
    )
}
