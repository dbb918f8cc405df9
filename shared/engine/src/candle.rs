//! Candles and the CSV format of the bundled market data.

use serde::{Deserialize, Serialize};

/// One OHLCV candle. `time` is the candle's open time in Unix epoch milliseconds, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Candle {
    pub time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

impl ta::Open for Candle {
    fn open(&self) -> f64 {
        self.open
    }
}
impl ta::High for Candle {
    fn high(&self) -> f64 {
        self.high
    }
}
impl ta::Low for Candle {
    fn low(&self) -> f64 {
        self.low
    }
}
impl ta::Close for Candle {
    fn close(&self) -> f64 {
        self.close
    }
}
impl ta::Volume for Candle {
    fn volume(&self) -> f64 {
        self.volume
    }
}

/// Why a CSV could not be read; the line is 1-based and counts the header.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CsvError {
    #[error("expected the header `time,open,high,low,close,volume`, found `{0}`")]
    Header(String),
    #[error("line {line}: {reason}")]
    Row { line: usize, reason: String },
    #[error("no candles")]
    Empty,
}

/// Parses the `time,open,high,low,close,volume` format of `data/market/` (pure: the caller
/// reads the file). Rows must be sorted by time without duplicates and be internally consistent
/// (`low <= open, close <= high`, finite, volume >= 0).
pub fn parse_csv(text: &str) -> Result<Vec<Candle>, CsvError> {
    let mut lines = text.lines().enumerate();
    let header = lines.next().map(|(_, l)| l.trim()).unwrap_or_default();
    if header != "time,open,high,low,close,volume" {
        return Err(CsvError::Header(header.chars().take(80).collect()));
    }
    let mut candles: Vec<Candle> = Vec::new();
    for (i, line) in lines {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let row = |reason: String| CsvError::Row {
            line: line_no,
            reason,
        };
        let fields: Vec<&str> = line.trim().split(',').collect();
        if fields.len() != 6 {
            return Err(row(format!("expected 6 fields, found {}", fields.len())));
        }
        let time: i64 = fields[0]
            .parse()
            .map_err(|_| row(format!("time `{}` is not an integer", fields[0])))?;
        let mut v = [0.0; 5];
        for (k, name) in ["open", "high", "low", "close", "volume"]
            .iter()
            .enumerate()
        {
            v[k] = fields[k + 1]
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| row(format!("{name} `{}` is not a finite number", fields[k + 1])))?;
        }
        let candle = Candle {
            time,
            open: v[0],
            high: v[1],
            low: v[2],
            close: v[3],
            volume: v[4],
        };
        if candle.low > candle.open.min(candle.close)
            || candle.high < candle.open.max(candle.close)
            || candle.volume < 0.0
        {
            return Err(row("inconsistent candle (low/high/volume)".into()));
        }
        if let Some(last) = candles.last()
            && time <= last.time
        {
            return Err(row("times must increase strictly".into()));
        }
        candles.push(candle);
    }
    if candles.is_empty() {
        return Err(CsvError::Empty);
    }
    Ok(candles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_with_line_numbers() {
        let ok = "time,open,high,low,close,volume\n1,10,12,9,11,5\n2,11,11,10,10,0\n";
        assert_eq!(parse_csv(ok).unwrap().len(), 2);
        let bad = "time,open,high,low,close,volume\n1,10,12,9,11,5\n1,11,11,10,10,0\n";
        assert_eq!(
            parse_csv(bad).unwrap_err().to_string(),
            "line 3: times must increase strictly"
        );
        assert!(matches!(parse_csv("a,b\n"), Err(CsvError::Header(_))));
        let inconsistent = "time,open,high,low,close,volume\n1,10,9,9,11,5\n";
        assert!(parse_csv(inconsistent).is_err());
        assert_eq!(
            parse_csv("time,open,high,low,close,volume\n"),
            Err(CsvError::Empty)
        );
    }
}
