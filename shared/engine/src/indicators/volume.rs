//! Volume and its simple moving average: `volume_t` (always defined) and `SMA(n)` of volume.

use serde::{Deserialize, Serialize};

use super::sma::Sma;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    sma: Sma,
}

impl Volume {
    pub fn new(period: usize) -> Result<Self, super::IndicatorError> {
        Ok(Self {
            sma: Sma::new(period)?,
        })
    }

    /// (volume, its SMA once defined)
    #[inline]
    pub fn next(&mut self, volume: f64) -> (f64, Option<f64>) {
        (volume, self.sma.next(volume))
    }
}

impl std::fmt::Display for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VOLUME({})", self.sma.period())
    }
}
