//! On-balance volume, `ta`'s implementation (equal to TA-Lib's for positive prices): starts at the
//! first candle's volume; adds the volume on an up close, subtracts it on a down close.

use serde::{Deserialize, Serialize};
use ta::Next;

use crate::Candle;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Obv {
    inner: ta::indicators::OnBalanceVolume,
}

impl Obv {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    pub fn next(&mut self, c: &Candle) -> f64 {
        self.inner.next(c)
    }
}

impl std::fmt::Display for Obv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OBV")
    }
}
