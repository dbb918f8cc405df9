//! The exchange's back-off kept in Postgres (`store::exchange`), shared by every function and
//! invocation that calls Binance: the step worker's and forward-tick's clients read it before
//! each request and write it on a 429 or 418.

use std::sync::Arc;

use adapters::binance::{Binance, BinanceConfig, Gate, GateFuture};
use chrono::DateTime;
use sqlx::PgPool;

use store::exchange::BINANCE as EXCHANGE;

#[derive(Debug, Clone)]
pub struct PgGate {
    pub pool: PgPool,
}

impl Gate for PgGate {
    fn until(&self) -> GateFuture<'_, Option<i64>> {
        Box::pin(async move {
            match store::exchange::hold_of(&self.pool, EXCHANGE).await {
                Ok(hold) => hold.map(|(until, _)| until.timestamp_millis()),
                Err(e) => {
                    // an unreadable gate lets the request through: Binance would refuse it
                    tracing::warn!(error = %e, "the exchange back-off could not be read");
                    None
                }
            }
        })
    }

    fn hold(&self, until_ms: i64, reason: String) -> GateFuture<'_, ()> {
        Box::pin(async move {
            let Some(until) = DateTime::from_timestamp_millis(until_ms) else {
                return;
            };
            tracing::warn!(until = %until, %reason, "the exchange asked us to wait; every request holds");
            if let Err(e) = store::exchange::hold(&self.pool, EXCHANGE, until, &reason).await {
                tracing::error!(error = %e, "the exchange back-off could not be stored");
            }
        })
    }
}

/// The Binance client every function that calls the exchange uses: it obeys the shared back-off.
pub fn binance(config: &BinanceConfig, pool: &PgPool) -> Binance {
    Binance::new(config).with_gate(Arc::new(PgGate { pool: pool.clone() }))
}
