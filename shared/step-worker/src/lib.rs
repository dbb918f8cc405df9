//! The arena (DESIGN sections 5, 5a and 5b): a backtest is a chain of SQS FIFO steps.
//!
//! - [`queue`]: the step message and the queue it travels on (group = session, explicit
//!   deduplication id = session and version).
//! - [`control`]: pause, resume, stop and speed, shared by the WebSocket actions and the REST
//!   routes; resume and stop send a step.
//! - [`candles`]: where candles come from (the cache, filled from Binance when a range is missing).
//! - [`decider`]: the agent's decision per candle: a baseline, or a model call over OpenRouter.
//! - [`worker`]: one step: restore, decide, commit, publish, send the next.

pub mod candles;
pub mod control;
pub mod decider;
pub mod queue;
pub mod worker;

pub use control::Controls;
pub use queue::{StepMessage, StepQueue, StepsConfig};
pub use worker::{Faults, KillPoint, Worker, WorkerConfig};
