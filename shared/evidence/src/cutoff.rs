//! The model cutoff registry (`data/model-cutoffs.csv`) and what a result's window says about it:
//! `window_vs_cutoff`, the evidence grade, and the cutoff split.
//!
//! The registry's header is `model,cutoff,source`: an OpenRouter model id or a prefix ending in
//! `*`, the training data cutoff as `YYYY-MM-DD` (a month the provider names is recorded as its
//! last day), and where the provider states it. The longest matching row wins. A cutoff covers its
//! whole day: a candle is after it when it opens at or after the next day's 00:00 UTC.

use chrono::NaiveDate;
use engine::{Timeframe, Trade};
use serde::{Deserialize, Serialize};

/// The registry bundled with AlphaLab.
pub const BUNDLED: &str = include_str!("../../../data/model-cutoffs.csv");

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegistryError {
    #[error("the header must be `model,cutoff,source`")]
    Header,
    #[error("line {line}: {why}")]
    Row { line: usize, why: String },
}

#[derive(Debug, Clone, PartialEq)]
struct Row {
    pattern: String,
    prefix: bool,
    cutoff: NaiveDate,
    source: String,
}

/// The training data cutoffs of known models.
#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    rows: Vec<Row>,
}

impl Registry {
    pub fn bundled() -> Self {
        Self::parse(BUNDLED).unwrap_or(Self { rows: Vec::new() })
    }

    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let header = reader.headers().map_err(|_| RegistryError::Header)?;
        if header.iter().collect::<Vec<_>>() != ["model", "cutoff", "source"] {
            return Err(RegistryError::Header);
        }
        let mut rows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let line = i + 2;
            let bad = |why: &str| RegistryError::Row {
                line,
                why: why.into(),
            };
            let record = record.map_err(|e| bad(&e.to_string()))?;
            let (Some(model), Some(cutoff), Some(source)) =
                (record.get(0), record.get(1), record.get(2))
            else {
                return Err(bad("three fields expected"));
            };
            let (pattern, prefix) = match model.strip_suffix('*') {
                Some(p) => (p, true),
                None => (model, false),
            };
            if pattern.is_empty() || pattern.contains('*') {
                return Err(bad("the model is an id or a prefix ending in `*`"));
            }
            let cutoff = NaiveDate::parse_from_str(cutoff, "%Y-%m-%d")
                .map_err(|_| bad("the cutoff is a date YYYY-MM-DD"))?;
            if source.is_empty() {
                return Err(bad("the source is missing"));
            }
            rows.push(Row {
                pattern: pattern.to_owned(),
                prefix,
                cutoff,
                source: source.to_owned(),
            });
        }
        Ok(Self { rows })
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The cutoff of `model` and its source: the longest matching row (an exact id before a
    /// prefix of the same length).
    pub fn cutoff(&self, model: &str) -> Option<(NaiveDate, &str)> {
        self.rows
            .iter()
            .filter(|r| match r.prefix {
                true => model.starts_with(&r.pattern),
                false => model == r.pattern,
            })
            .max_by_key(|r| (r.pattern.len(), !r.prefix))
            .map(|r| (r.cutoff, r.source.as_str()))
    }
}

/// The first instant after a cutoff day (its next day's 00:00 UTC), in epoch ms.
pub fn cutoff_end_ms(cutoff: NaiveDate) -> i64 {
    cutoff
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(i64::MAX)
}

/// Where the decided candles lie against the model's cutoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// Every decided candle opened after the cutoff day: it cannot be in the training data.
    After,
    /// Every decided candle closed by the end of the cutoff day.
    Before,
    Crossing,
    Unknown,
    NotApplicable,
}

/// `window_vs_cutoff` of candles opening `first..=last` (open times, ms), `step_ms` long.
pub fn window(cutoff: Option<NaiveDate>, first: i64, last: i64, step_ms: i64) -> Window {
    let Some(cutoff) = cutoff else {
        return Window::Unknown;
    };
    let end = cutoff_end_ms(cutoff);
    if first >= end {
        Window::After
    } else if last.saturating_add(step_ms) <= end {
        Window::Before
    } else {
        Window::Crossing
    }
}

/// `A` a forward test, `B` a backtest after the cutoff, `C` crossing it, `D` before it or an
/// unknown cutoff; `not_applicable` for a baseline.
pub fn grade(baseline: bool, forward: bool, window: Window) -> &'static str {
    match (baseline, forward, window) {
        (true, _, _) => "not_applicable",
        (_, true, _) => "A",
        (_, _, Window::After) => "B",
        (_, _, Window::Crossing) => "C",
        _ => "D",
    }
}

/// The headline metrics of one side of the cutoff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    pub candles: u64,
    pub total_return_pct: Option<f64>,
    pub win_rate_pct: Option<f64>,
    pub max_drawdown_pct: Option<f64>,
    pub sharpe_ratio: Option<f64>,
}

/// `evidence.cutoff_split`: the headline metrics before and after the cutoff, each side from the
/// equity at its start (the initial capital, then the equity at the boundary's close before).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CutoffSplit {
    pub cutoff: String,
    /// Open time (ms) of the first candle after the cutoff.
    pub boundary: i64,
    pub before: Side,
    pub after: Side,
}

/// One side's metrics: `equity` the closes of its candles, `start` the equity before them,
/// `trades` those that entered on its candles. Return and drawdown as the result's metrics
/// define them; the Sharpe ratio annualised by the timeframe (sample deviation).
fn side(start: f64, equity: &[f64], trades: &[&Trade], timeframe: Timeframe) -> Side {
    let n = equity.len();
    let mut prev = start;
    let mut peak = start;
    let mut drawdown: f64 = 0.0;
    let mut returns = Vec::with_capacity(n);
    for &e in equity {
        returns.push(e / prev - 1.0);
        peak = peak.max(e);
        if peak > 0.0 {
            drawdown = drawdown.max((peak - e) / peak * 100.0);
        }
        prev = e;
    }
    let sharpe = (n >= 2)
        .then(|| {
            let mean = returns.iter().sum::<f64>() / n as f64;
            let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let sd = var.sqrt();
            (sd > 0.0).then(|| mean / sd * timeframe.candles_per_year().sqrt())
        })
        .flatten();
    let wins = trades.iter().filter(|t| t.pnl > 0.0).count();
    Side {
        candles: n as u64,
        total_return_pct: equity.last().map(|e| (e / start - 1.0) * 100.0),
        win_rate_pct: (!trades.is_empty()).then(|| wins as f64 / trades.len() as f64 * 100.0),
        max_drawdown_pct: (n > 0).then_some(drawdown),
        sharpe_ratio: sharpe,
    }
}

/// The split of a run whose candles open at `times` with closing `equity`, at `cutoff`: `None`
/// unless it crosses it.
pub fn split(
    cutoff: NaiveDate,
    capital: f64,
    times: &[i64],
    equity: &[f64],
    trades: &[Trade],
    timeframe: Timeframe,
) -> Option<CutoffSplit> {
    let end = cutoff_end_ms(cutoff);
    let b = times.iter().position(|&t| t >= end)?;
    if b == 0 {
        return None;
    }
    let (before, after): (Vec<&Trade>, Vec<&Trade>) =
        trades.iter().partition(|t| (t.entry_index as usize) < b);
    Some(CutoffSplit {
        cutoff: cutoff.format("%Y-%m-%d").to_string(),
        boundary: times[b],
        before: side(capital, &equity[..b], &before, timeframe),
        after: side(equity[b - 1], &equity[b..], &after, timeframe),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_registry_reads_and_the_longest_row_wins() {
        let r = Registry::bundled();
        assert!(r.len() >= 20, "{}", r.len());
        let date = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            r.cutoff("anthropic/claude-3.5-sonnet").unwrap().0,
            date("2024-04-30")
        );
        assert_eq!(
            r.cutoff("openai/gpt-4o-mini").unwrap().0,
            date("2023-10-01")
        );
        assert_eq!(r.cutoff("openai/gpt-5-mini").unwrap().0, date("2024-05-31"));
        assert_eq!(r.cutoff("openai/gpt-5").unwrap().0, date("2024-09-30"));
        assert!(r.cutoff("acme/unknown-model").is_none());
    }

    #[test]
    fn a_bad_registry_names_its_line() {
        assert_eq!(Registry::parse("a,b,c\n"), Err(RegistryError::Header));
        let e = Registry::parse("model,cutoff,source\nx/y,2024-13-01,here\n").unwrap_err();
        assert_eq!(e.to_string(), "line 2: the cutoff is a date YYYY-MM-DD");
        let exact =
            Registry::parse("model,cutoff,source\nx/y,2024-01-01,a\nx/*,2023-01-01,b\n").unwrap();
        assert_eq!(exact.cutoff("x/y").unwrap().1, "a");
        assert_eq!(exact.cutoff("x/z").unwrap().1, "b");
    }

    #[test]
    fn windows_and_grades() {
        let cutoff = NaiveDate::from_ymd_opt(2021, 1, 31);
        let end = cutoff_end_ms(cutoff.unwrap());
        let h = 3_600_000;
        assert_eq!(window(cutoff, end, end + 10 * h, h), Window::After);
        assert_eq!(window(cutoff, end - 10 * h, end - h, h), Window::Before);
        assert_eq!(window(cutoff, end - 10 * h, end, h), Window::Crossing);
        assert_eq!(window(None, 0, 1, h), Window::Unknown);
        assert_eq!(grade(false, true, Window::Before), "A");
        assert_eq!(grade(false, false, Window::After), "B");
        assert_eq!(grade(false, false, Window::Crossing), "C");
        assert_eq!(grade(false, false, Window::Unknown), "D");
        assert_eq!(grade(true, false, Window::After), "not_applicable");
    }

    #[test]
    fn each_side_starts_from_its_own_equity() {
        let cutoff = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let day = 86_400_000;
        let times = [0, day / 2, day, day + day / 2];
        let equity = [110.0, 99.0, 198.0, 99.0];
        let s = split(cutoff, 100.0, &times, &equity, &[], Timeframe::H1).unwrap();
        assert_eq!(s.boundary, day);
        assert!((s.before.total_return_pct.unwrap() + 1.0).abs() < 1e-12);
        assert!((s.after.total_return_pct.unwrap() - 0.0).abs() < 1e-12);
        assert!((s.before.max_drawdown_pct.unwrap() - 10.0).abs() < 1e-12);
        assert!((s.after.max_drawdown_pct.unwrap() - 50.0).abs() < 1e-12);
        assert!(split(cutoff, 100.0, &times[2..], &equity[2..], &[], Timeframe::H1).is_none());
    }
}
