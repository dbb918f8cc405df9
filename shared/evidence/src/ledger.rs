//! The signed ledger of a result (`GET /api/results/{id}/ledger`): every candle the engine saw
//! and every decision it applied, hash-chained and sealed with an Ed25519 signature, so that
//! anyone can check that nothing was changed and replay the engine to the same figures.
//!
//! Format (JSON Lines, lines joined by `\n`, each line one JSON object in its RFC 8785 form, see
//! [`crate::canonical`], with `prev` at its top level: the lowercase hex SHA-256 of the previous
//! line's bytes, 64 zeros for the first):
//!
//! 1. `{"header": {...}, "prev": "000..."}`: `version` (1), `result_id`, `session_id`, the
//!    engine configuration as applied (`asset`, `timeframe`, `initial_capital`, `mode`, `safety`,
//!    `max_leverage`, `allow_leverage`, `fee_bps`, `slippage_bps`, `indicators`), the evidence's
//!    `seed` (decimal string), `null_agents`, `resamples` and `model_cutoff` (or null).
//! 2. One line per candle: `n` (the session's candle index; warm-up candles count up to -1),
//!    `time` (open time, epoch ms), `open`, `high`, `low`, `close`, `volume`; warm-up candles
//!    carry `"warmup": true` and no decision; decided ones carry `action`, `order` (`leverage`,
//!    `size`, `stop_loss_pct`, `take_profit_pct`, or null), `source` (`model`, `cache`,
//!    `fallback`, `baseline`), `prompt_sha256` and `answer_sha256` (null for baselines).
//! 3. `{"seal": {...}, "prev": ...}`: `entries` (candle lines), `head` (SHA-256 of the last
//!    candle line, the header's when there is none), `result_id`, `metrics`, `evidence`,
//!    `key_id` and `signature`: base64 Ed25519 over the RFC 8785 form of the seal without
//!    `signature`.

use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::NaiveDate;
use engine::{Action, Candle, Engine, EngineConfig, Order, Trade};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::canonical::{canonical, sha256_hex};
use crate::{Evidence, Inputs, Settings};

/// The ledger format this code writes and reads.
pub const VERSION: u64 = 1;
/// The most random agents or bootstrap resamples a ledger may ask a verifier to recompute (as
/// `EVIDENCE_NULL_AGENTS` and `EVIDENCE_BOOTSTRAP_RESAMPLES` allow).
pub const MAX_DRAWS: u32 = 100_000;
/// `prev` of the first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where a decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Model,
    /// A stored answer to the same request, reused.
    Cache,
    /// A failed or unreadable answer, taken as HOLD.
    Fallback,
    Baseline,
}

/// The header's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub version: u64,
    pub result_id: String,
    pub session_id: String,
    #[serde(flatten)]
    pub config: EngineConfig,
    pub seed: String,
    pub null_agents: u32,
    pub resamples: u32,
    pub model_cutoff: Option<String>,
}

/// The decision applied to a candle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub action: Action,
    pub order: Option<Order>,
    pub source: Source,
    pub prompt_sha256: Option<String>,
    pub answer_sha256: Option<String>,
}

/// One candle line.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub n: i64,
    pub candle: Candle,
    /// `None`: a warm-up candle.
    pub decision: Option<Applied>,
}

impl Entry {
    fn value(&self) -> Value {
        let c = &self.candle;
        let mut m = Map::new();
        m.insert("n".into(), self.n.into());
        m.insert("time".into(), c.time.into());
        m.insert("open".into(), c.open.into());
        m.insert("high".into(), c.high.into());
        m.insert("low".into(), c.low.into());
        m.insert("close".into(), c.close.into());
        m.insert("volume".into(), c.volume.into());
        match &self.decision {
            None => {
                m.insert("warmup".into(), true.into());
            }
            Some(d) => {
                m.insert("action".into(), d.action.as_str().into());
                m.insert(
                    "order".into(),
                    serde_json::to_value(d.order).unwrap_or(Value::Null),
                );
                m.insert(
                    "source".into(),
                    serde_json::to_value(d.source).unwrap_or(Value::Null),
                );
                m.insert("prompt_sha256".into(), d.prompt_sha256.clone().into());
                m.insert("answer_sha256".into(), d.answer_sha256.clone().into());
            }
        }
        Value::Object(m)
    }
}

/// An Ed25519 signing key and its id.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pub key_id: String,
    /// Base64 of the 32 raw public key bytes.
    pub public_key: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("LEDGER_SIGNING_KEY must be the base64 of a 32-byte Ed25519 seed")]
pub struct KeyError;

/// A key's id: the first 16 hex digits of the SHA-256 of its 32 raw public key bytes.
pub fn key_id(public_key: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, public_key);
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl SigningKey {
    /// From the base64 of a 32-byte seed (`LEDGER_SIGNING_KEY`).
    pub fn from_base64(seed: &str) -> Result<Self, KeyError> {
        let bytes = B64.decode(seed.trim()).map_err(|_| KeyError)?;
        if bytes.len() != 32 {
            return Err(KeyError);
        }
        let pair = Ed25519KeyPair::from_seed_unchecked(&bytes).map_err(|_| KeyError)?;
        let public = pair.public_key().as_ref().to_vec();
        Ok(Self {
            key_id: key_id(&public),
            public_key: B64.encode(&public),
            pair,
        })
    }

    /// A new random seed, base64 (a development secret).
    pub fn generate_seed() -> String {
        let mut seed = [0u8; 32];
        let _ = aws_lc_rs::rand::fill(&mut seed);
        B64.encode(seed)
    }

    pub fn sign(&self, message: &[u8]) -> String {
        B64.encode(self.pair.sign(message).as_ref())
    }
}

/// Whether `signature` (base64) is `public_key`'s (base64) over `message`.
pub fn signature_ok(public_key: &str, message: &[u8], signature: &str) -> bool {
    let (Ok(key), Ok(sig)) = (B64.decode(public_key.trim()), B64.decode(signature)) else {
        return false;
    };
    UnparsedPublicKey::new(&signature::ED25519, key)
        .verify(message, &sig)
        .is_ok()
}

/// Writes a ledger line by line.
#[derive(Debug)]
pub struct Writer {
    lines: Vec<String>,
    prev: String,
    entries: u64,
}

impl Writer {
    pub fn new(header: &Header) -> Self {
        let mut w = Self {
            lines: Vec::new(),
            prev: GENESIS.into(),
            entries: 0,
        };
        w.push(json!({ "header": header }));
        w
    }

    fn push(&mut self, mut value: Value) {
        if let Some(m) = value.as_object_mut() {
            m.insert("prev".into(), Value::String(self.prev.clone()));
        }
        let line = canonical(&value);
        self.prev = sha256_hex(&line);
        self.lines.push(line);
    }

    pub fn entry(&mut self, entry: &Entry) {
        self.entries += 1;
        self.push(entry.value());
    }

    /// The SHA-256 of the last line so far (the seal's `head` once every entry is in).
    pub fn head(&self) -> &str {
        &self.prev
    }

    /// Seals the ledger: its lines, and the seal's `head`.
    pub fn seal(
        mut self,
        result_id: &str,
        metrics: &Value,
        evidence: &Value,
        key: &SigningKey,
    ) -> (Vec<String>, String) {
        let head = self.prev.clone();
        let mut seal = json!({
            "entries": self.entries,
            "head": head,
            "result_id": result_id,
            "metrics": metrics,
            "evidence": evidence,
            "key_id": key.key_id,
        });
        let signature = key.sign(canonical(&seal).as_bytes());
        seal["signature"] = signature.into();
        self.push(json!({ "seal": seal }));
        (self.lines, head)
    }
}

/// What a replay of a ledger gives.
#[derive(Debug, Clone)]
pub struct Replay {
    pub header: Header,
    pub candles: Vec<Candle>,
    pub equity: Vec<f64>,
    pub trades: Vec<Trade>,
    pub metrics: engine::Metrics,
}

impl Replay {
    /// The evidence of the replayed run, as its header asks for it.
    pub fn evidence(&self, threads: usize) -> Result<Evidence, String> {
        let seed: u64 = self
            .header
            .seed
            .parse()
            .map_err(|_| "the header's seed is not a decimal u64".to_owned())?;
        let cutoff = match &self.header.model_cutoff {
            None => None,
            Some(s) => Some(
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map_err(|_| "the header's model_cutoff is not a date".to_owned())?,
            ),
        };
        Ok(crate::compute(
            &Inputs {
                config: &self.header.config,
                candles: &self.candles,
                equity: &self.equity,
                trades: &self.trades,
                metrics: &self.metrics,
                seed,
                cutoff,
            },
            Settings {
                null_agents: self.header.null_agents,
                resamples: self.header.resamples,
            },
            threads,
        ))
    }
}

/// Replays the engine over candles and their decisions (warm-up candles have none).
pub fn replay(header: Header, entries: &[Entry]) -> Result<Replay, (usize, String)> {
    let mut engine = Engine::new(header.config.clone()).map_err(|e| (0, e.to_string()))?;
    let mut candles = Vec::new();
    let mut equity = Vec::new();
    let mut trades = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let fail = |why: String| (i, why);
        match &e.decision {
            None => engine.warm(e.candle).map_err(|x| fail(x.to_string()))?,
            Some(d) => {
                engine.observe(e.candle).map_err(|x| fail(x.to_string()))?;
                let order = d.order.unwrap_or_default();
                let applied = engine
                    .apply_order(d.action, &order)
                    .map_err(|x| fail(x.to_string()))?;
                trades.extend(applied.closed);
                candles.push(e.candle);
                equity.extend(engine.last_point().map(|p| p.equity));
            }
        }
    }
    let (closed, metrics) = engine
        .finish()
        .map_err(|e| (entries.len(), e.to_string()))?;
    trades.extend(closed);
    Ok(Replay {
        header,
        candles,
        equity,
        trades,
        metrics,
    })
}

/// Why a ledger fails, at its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {why}")]
pub struct Failure {
    pub line: usize,
    pub why: String,
}

/// A verified ledger.
#[derive(Debug, Clone)]
pub struct Verified {
    pub header: Header,
    pub seal: Map<String, Value>,
    pub replay: Replay,
    pub evidence: Evidence,
}

fn fail<T>(line: usize, why: impl Into<String>) -> Result<T, Failure> {
    Err(Failure {
        line,
        why: why.into(),
    })
}

fn number(m: &Map<String, Value>, name: &str) -> Option<f64> {
    m.get(name).and_then(Value::as_f64)
}

fn entry_of(m: &Map<String, Value>) -> Result<Entry, String> {
    let n = m.get("n").and_then(Value::as_i64).ok_or("`n` is missing")?;
    let time = m
        .get("time")
        .and_then(Value::as_i64)
        .ok_or("`time` is missing")?;
    let value = |name: &str| number(m, name).ok_or(format!("`{name}` is missing"));
    let candle = Candle {
        time,
        open: value("open")?,
        high: value("high")?,
        low: value("low")?,
        close: value("close")?,
        volume: value("volume")?,
    };
    let decision = match m.get("warmup") {
        Some(Value::Bool(true)) => None,
        Some(_) => return Err("`warmup` is true or absent".into()),
        None => {
            let applied: Applied = serde_json::from_value(Value::Object(m.clone()))
                .map_err(|e| format!("unreadable decision: {e}"))?;
            Some(applied)
        }
    };
    Ok(Entry {
        n,
        candle,
        decision,
    })
}

/// The differences between two JSON objects of figures, by name (`[]` when equal bit for bit).
fn differences(stated: &Value, replayed: &Value) -> Vec<String> {
    let (Some(a), Some(b)) = (stated.as_object(), replayed.as_object()) else {
        return (canonical(stated) != canonical(replayed))
            .then(|| "the figures differ".to_owned())
            .into_iter()
            .collect();
    };
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|k| {
            let (x, y) = (
                a.get(k).unwrap_or(&Value::Null),
                b.get(k).unwrap_or(&Value::Null),
            );
            (canonical(x) != canonical(y)).then(|| {
                format!(
                    "{k} is {} in the seal, the replay gives {}",
                    canonical(x),
                    canonical(y)
                )
            })
        })
        .collect()
}

/// The stated `prev` of a line, if it reads.
fn stated_prev(line: &str) -> Option<String> {
    let v: Value = serde_json::from_str(line).ok()?;
    v.get("prev")?.as_str().map(str::to_owned)
}

/// Which line a broken link before line `i` (0-based) names: the line before when line `i`
/// itself is intact (the line after it, or the seal's `head`, still has its hash), else line
/// `i` (its `prev` was changed).
fn broken_link(lines: &[&str], i: usize) -> Failure {
    let changed_before = i > 0
        && match lines.get(i + 1) {
            Some(next) => stated_prev(next).as_deref() == Some(sha256_hex(lines[i]).as_str()),
            // the seal: its `head` names the line before it as it was signed
            None => {
                let head = serde_json::from_str::<Value>(lines[i])
                    .ok()
                    .and_then(|v| v.get("seal")?.get("head")?.as_str().map(str::to_owned));
                head.as_deref() != Some(sha256_hex(lines[i - 1]).as_str())
            }
        };
    match changed_before {
        true => Failure {
            line: i,
            why: "changed: its SHA-256 is not the next line's `prev`".into(),
        },
        false => Failure {
            line: i + 1,
            why: "`prev` is not the SHA-256 of the line before".into(),
        },
    }
}

/// Checks a ledger's text: every line's form and `prev`, the seal's `head` and signature (with
/// `public_key`, base64), then replays the engine and recomputes the seal's metrics and evidence.
pub fn verify(text: &str, public_key: &str, threads: usize) -> Result<Verified, Failure> {
    let lines: Vec<&str> = text
        .strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .collect();
    let mut prev = GENESIS.to_owned();
    let mut header: Option<(Header, usize)> = None;
    let mut entries: Vec<Entry> = Vec::new();
    let mut last_entry_hash = None;
    let mut seal: Option<(Map<String, Value>, usize)> = None;
    for (i, line) in lines.iter().enumerate() {
        let at = i + 1;
        if seal.is_some() {
            return fail(at, "a line after the seal");
        }
        let value: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => return fail(at, format!("not JSON ({e})")),
        };
        if canonical(&value) != *line {
            return fail(
                at,
                "not in RFC 8785 canonical form (its bytes were changed)",
            );
        }
        let Some(mut m) = value.as_object().cloned() else {
            return fail(at, "not a JSON object");
        };
        match m.remove("prev") {
            Some(Value::String(p)) if p == prev => {}
            Some(Value::String(_)) => return Err(broken_link(&lines, i)),
            _ => return fail(at, "`prev` is missing"),
        }
        let hash = sha256_hex(line);
        if at == 1 {
            let Some(h) = m.remove("header") else {
                return fail(at, "the first line is not the header");
            };
            let h: Header = match serde_json::from_value(h) {
                Ok(h) => h,
                Err(e) => return fail(at, format!("unreadable header: {e}")),
            };
            if h.version != VERSION {
                return fail(
                    at,
                    format!("ledger version {}, this reads {VERSION}", h.version),
                );
            }
            if h.null_agents > MAX_DRAWS || h.resamples > MAX_DRAWS {
                return fail(
                    at,
                    format!("more than {MAX_DRAWS} random agents or resamples"),
                );
            }
            header = Some((h, at));
        } else if let Some(s) = m.remove("seal") {
            let Some(s) = s.as_object().cloned() else {
                return fail(at, "the seal is not an object");
            };
            seal = Some((s, at));
        } else {
            let entry = match entry_of(&m) {
                Ok(e) => e,
                Err(why) => return fail(at, why),
            };
            if let Some(last) = entries.last()
                && entry.n != last.n + 1
            {
                return fail(at, format!("candle {} follows candle {}", entry.n, last.n));
            }
            entries.push(entry);
            last_entry_hash = Some(hash.clone());
        }
        prev = hash;
    }
    let Some((header, _)) = header else {
        return fail(1, "no header");
    };
    let Some((seal, seal_line)) = seal else {
        return fail(lines.len(), "no seal: the ledger is cut short");
    };
    let head = last_entry_hash.unwrap_or_else(|| sha256_hex(lines[0]));
    if seal.get("head").and_then(Value::as_str) != Some(head.as_str()) {
        return fail(
            seal_line,
            "`head` is not the SHA-256 of the last candle line",
        );
    }
    if seal.get("entries").and_then(Value::as_u64) != Some(entries.len() as u64) {
        return fail(seal_line, "`entries` is not the number of candle lines");
    }
    if seal.get("result_id").and_then(Value::as_str) != Some(header.result_id.as_str()) {
        return fail(seal_line, "`result_id` is not the header's");
    }
    let mut unsigned = seal.clone();
    let Some(Value::String(signature)) = unsigned.remove("signature") else {
        return fail(seal_line, "`signature` is missing");
    };
    if !signature_ok(
        public_key,
        canonical(&Value::Object(unsigned)).as_bytes(),
        &signature,
    ) {
        return fail(
            seal_line,
            "the signature does not verify with this public key",
        );
    }
    let replay = match replay(header.clone(), &entries) {
        Ok(r) => r,
        // the failing entry's line: after the header
        Err((i, why)) => return fail(i + 2, format!("the engine refuses it: {why}")),
    };
    let metrics = replay.metrics.summary_json();
    if let Some(d) = differences(seal.get("metrics").unwrap_or(&Value::Null), &metrics).first() {
        return fail(seal_line, format!("metric {d}"));
    }
    let evidence = match replay.evidence(threads) {
        Ok(e) => e,
        Err(why) => return fail(1, why),
    };
    let recomputed = serde_json::to_value(&evidence).unwrap_or(Value::Null);
    if let Some(d) = differences(seal.get("evidence").unwrap_or(&Value::Null), &recomputed).first()
    {
        return fail(seal_line, format!("evidence {d}"));
    }
    Ok(Verified {
        header,
        seal,
        replay,
        evidence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::Timeframe;

    fn candle(i: i64, close: f64) -> Candle {
        Candle {
            time: i * 3_600_000,
            open: close,
            high: close * 1.01,
            low: close * 0.99,
            close,
            volume: 1.0,
        }
    }

    fn ledger(key: &SigningKey) -> String {
        let config = EngineConfig::new("BTCUSDT", Timeframe::H1);
        let header = Header {
            version: VERSION,
            result_id: "r1".into(),
            session_id: "s1".into(),
            config: EngineConfig {
                indicators: vec![],
                ..config
            },
            seed: "42".into(),
            null_agents: 20,
            resamples: 20,
            model_cutoff: None,
        };
        let mut entries = vec![Entry {
            n: -1,
            candle: candle(0, 100.0),
            decision: None,
        }];
        for i in 0..40 {
            let action = match i % 10 {
                2 => Action::Long,
                7 => Action::Close,
                _ => Action::Hold,
            };
            entries.push(Entry {
                n: i,
                candle: candle(i + 1, 100.0 + (i as f64 * 0.7).sin() * 5.0),
                decision: Some(Applied {
                    action,
                    order: (action == Action::Long).then(Order::default),
                    source: Source::Baseline,
                    prompt_sha256: None,
                    answer_sha256: None,
                }),
            });
        }
        let replay = replay(header.clone(), &entries).unwrap();
        let evidence = serde_json::to_value(replay.evidence(2).unwrap()).unwrap();
        let mut w = Writer::new(&header);
        for e in &entries {
            w.entry(e);
        }
        let (lines, _) = w.seal("r1", &replay.metrics.summary_json(), &evidence, key);
        lines.join("\n")
    }

    #[test]
    fn a_ledger_verifies_and_any_changed_byte_is_found_at_its_line() {
        let key = SigningKey::from_base64(&B64.encode([7u8; 32])).unwrap();
        let text = ledger(&key);
        let ok = verify(&text, &key.public_key, 2).unwrap();
        assert_eq!(ok.replay.candles.len(), 40);
        // a candle value, a decision, a hash, a metric of the seal, the signature
        for (line, from, to) in [
            (1, "\"fee_bps\":10", "\"fee_bps\":11"),
            (1, "\"null_agents\":20", "\"null_agents\":200000"),
            (42, "\"volume\":1", "\"volume\":3"),
            (43, "\"prev\":\"", "\"prev\":\"1"),
            (5, "\"volume\":1", "\"volume\":2"),
            (6, "\"action\":\"hold\"", "\"action\":\"long\""),
            (7, "\"prev\":\"", "\"prev\":\"0"),
            (43, "\"total_trades\":4", "\"total_trades\":5"),
            (43, "\"signature\":\"", "\"signature\":\"A"),
        ] {
            let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
            assert!(
                lines[line - 1].contains(from),
                "{line}: {}",
                lines[line - 1]
            );
            lines[line - 1] = lines[line - 1].replacen(from, to, 1);
            let err = verify(&lines.join("\n"), &key.public_key, 2).unwrap_err();
            assert_eq!(err.line, line, "{from}: {err}");
        }
        let other = SigningKey::from_base64(&B64.encode([8u8; 32])).unwrap();
        assert!(verify(&text, &other.public_key, 2).is_err());
    }

    #[test]
    fn key_ids_are_stable() {
        let key = SigningKey::from_base64(&B64.encode([7u8; 32])).unwrap();
        assert_eq!(key.key_id.len(), 16);
        assert!(SigningKey::from_base64("c2hvcnQ=").is_err());
        assert!(format!("{key:?}").contains(&key.key_id));
    }
}

#[cfg(test)]
mod example {
    use super::*;
    use engine::Timeframe;

    /// The README's worked example: a ledger of five lines (header, one warm-up candle, two
    /// decided candles, seal), signed with the key of seed 32 x 0x07.
    pub(crate) fn five_lines() -> String {
        let key = SigningKey::from_base64(&B64.encode([7u8; 32])).unwrap();
        let mut config = EngineConfig::new("BTCUSDT", Timeframe::H1);
        config.indicators = vec![];
        let header = Header {
            version: VERSION,
            result_id: "7d2c5a9e-1f3b-4c8d-9e6f-0a1b2c3d4e5f".into(),
            session_id: "3b9f0c1d-2e4a-4b6c-8d0e-1f2a3b4c5d6e".into(),
            config,
            seed: crate::seed_of(&[0; 16]).to_string(),
            null_agents: 10,
            resamples: 10,
            model_cutoff: None,
        };
        let c = |time: i64, o: f64, h: f64, l: f64, cl: f64| Candle {
            time,
            open: o,
            high: h,
            low: l,
            close: cl,
            volume: 12.5,
        };
        let entries = vec![
            Entry {
                n: -1,
                candle: c(1612137600000, 33092.97, 33410.0, 32900.0, 33300.0),
                decision: None,
            },
            Entry {
                n: 0,
                candle: c(1612141200000, 33300.0, 33700.0, 33200.0, 33650.5),
                decision: Some(Applied {
                    action: Action::Long,
                    order: Some(Order {
                        size: Some(0.5),
                        ..Order::default()
                    }),
                    source: Source::Model,
                    prompt_sha256: Some(crate::canonical::sha256_hex("prompt")),
                    answer_sha256: Some(crate::canonical::sha256_hex("answer")),
                }),
            },
            Entry {
                n: 1,
                candle: c(1612144800000, 33650.5, 34100.0, 33600.0, 34020.0),
                decision: Some(Applied {
                    action: Action::Hold,
                    order: None,
                    source: Source::Cache,
                    prompt_sha256: Some(crate::canonical::sha256_hex("prompt 2")),
                    answer_sha256: Some(crate::canonical::sha256_hex("answer 2")),
                }),
            },
        ];
        let replay = replay(header.clone(), &entries).unwrap();
        let evidence = serde_json::to_value(replay.evidence(1).unwrap()).unwrap();
        let mut w = Writer::new(&header);
        for e in &entries {
            w.entry(e);
        }
        let (lines, _) = w.seal(
            &header.result_id,
            &replay.metrics.summary_json(),
            &evidence,
            &key,
        );
        lines.join("\n") + "\n"
    }

    #[test]
    fn the_readme_shows_this_ledger_and_it_verifies() {
        let readme = include_str!("../../../README.md");
        let block = readme
            .split("<!-- ledger example: shared/evidence/src/ledger.rs -->\n```jsonl\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("the README's ledger example");
        assert_eq!(block, five_lines());
        let key = SigningKey::from_base64(&B64.encode([7u8; 32])).unwrap();
        assert_eq!(
            key.public_key,
            "6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw="
        );
        assert!(readme.contains(&key.public_key));
        let verified = verify(block, &key.public_key, 1).unwrap();
        assert_eq!(verified.replay.trades.len(), 1);
    }
}
