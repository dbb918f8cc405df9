//! The step worker (DESIGN sections 5, 5a and 5b): a session (a backtest) is a chain of SQS FIFO
//! steps. Where to read, in order:
//!
//! - [`plan`]: the start rules (`plan_backtest`): a request's body and its facts -> the session.
//! - [`queue`]: the step message and the queue it travels on (group = session, deduplication id
//!   = session and version).
//! - [`reconcile`]: the version protocol as a pure function: what a message does to its session.
//! - [`deadline`]: a step's time: its budget, and the deadline everything it waits on carries.
//! - [`worker`]: one step: the record in, the session restored, the next step sent; backoff.
//! - [`run`]: the candles of a step, paced or at instant, with [`window`] for a model agent's
//!   lookahead window and [`decider`] for how the agent decides.
//! - [`commit`]: commit, publish (the outbox first), finish, and failing a session; [`seal`]:
//!   the result's evidence, methodology card and signed ledger, built as it is written.
//! - [`candles`]: every candle of the range cached before the run, gaps remembered.
//! - [`events`], [`reasons`]: what the session's subscribers and its user are told.
//! - [`control`]: pause, resume, stop and speed, shared by the WebSocket and REST routes.
//! - [`watchdog`]: the stalled-session and dead-letter safety net.
//! - [`forward`]: forward sessions' anchor, warm-up and candles; [`tick`]: `forward-tick`, which
//!   caches newly closed candles and sends their steps; [`gate`]: the exchange's shared back-off.
//! - [`faults`]: where tests kill a step.

pub mod candles;
pub mod commit;
pub mod configuration;
pub mod control;
pub mod deadline;
pub mod decider;
pub mod events;
pub mod faults;
pub mod forward;
pub mod gate;
pub mod plan;
pub mod queue;
pub mod reasons;
pub mod reconcile;
pub mod run;
pub mod seal;
pub mod tick;
pub mod watchdog;
pub mod window;
pub mod worker;

pub use configuration::{EvidenceConfig, WorkerConfig};
pub use control::Controls;
pub use faults::{Faults, KillPoint};
pub use queue::{StepMessage, StepQueue, StepsConfig};
pub use tick::{TickReport, Ticker};
pub use watchdog::{Watchdog, WatchdogConfig};
pub use worker::{Outcome, StepError, Worker};
