//! AlphaLab's trading engine: pure, synchronous and deterministic. No I/O, no clock, no
//! randomness: the same candles and decisions always give the same trades, metrics and equity,
//! and the whole state serialises into a checkpoint (DESIGN sections 2, 5 and 5a).

pub mod candle;
pub mod indicators;
pub mod timeframe;

pub use candle::{Candle, parse_csv};
pub use indicators::IndicatorSet;
pub use timeframe::Timeframe;

pub mod baseline;
pub mod decision;
pub mod engine;
pub mod metrics;
pub mod prompt;
pub mod rules;

pub use decision::{Action, Decision, Order};
pub use engine::{
    Applied, CHECKPOINT_VERSION, Context, Engine, EngineConfig, ExitType, Mode, Position, Side,
    Trade,
};
pub use metrics::Metrics;
