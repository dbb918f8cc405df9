//! The engine's integration tests, in one binary: TA-Lib golden values, the portfolio rules on
//! real candles, checkpoints, the decision parser and the prompt snapshots.

mod common;

mod checkpoint;
mod decision;
mod golden;
mod portfolio;
mod prompts;
mod warmup;
