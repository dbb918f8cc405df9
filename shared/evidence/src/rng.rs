//! The evidence's random numbers: xoshiro256++ (Blackman & Vigna, 2019) seeded through
//! SplitMix64, one independent stream per random agent and per bootstrap resample, so the figures
//! do not depend on the order (or the number of threads) in which they are computed.
//!
//! Written out so that anyone can re-implement it (the README gives the same recipe):
//!
//! - SplitMix64: `x += 0x9E3779B97F4A7C15; z = x; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
//!   z = (z ^ (z >> 27)) * 0x94D049BB133111EB; return z ^ (z >> 31)` (wrapping arithmetic).
//! - A stream's state is four successive SplitMix64 outputs from `x = seed ^ (purpose << 56) ^
//!   index` (purpose 1: random agent `index`, purpose 2: bootstrap resample `index`).
//! - xoshiro256++: `result = rotl(s0 + s3, 23) + s0; t = s1 << 17; s2 ^= s0; s3 ^= s1;
//!   s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl(s3, 45)`.
//! - A uniform integer below `n`: draw `x`, reject while `x >= 2^64 - (2^64 mod n)`, return
//!   `x mod n`. A uniform double in [0, 1): `(x >> 11) * 2^-53`.

/// What a stream is for (the `purpose` of its seed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Chance = 1,
    Bootstrap = 2,
}

/// One step of SplitMix64.
pub fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256++.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// The stream of `purpose` number `index` under `seed`.
    pub fn stream(seed: u64, purpose: Purpose, index: u64) -> Self {
        let mut x = seed ^ ((purpose as u64) << 56) ^ index;
        let s = [
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
        ];
        Self { s }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform integer in `0..n` (`n > 0`), by rejection: no modulo bias.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        // 2^64 mod n, computed without 128-bit arithmetic
        let rem = (u64::MAX % n + 1) % n;
        loop {
            let x = self.next_u64();
            if rem == 0 || x < u64::MAX - rem + 1 {
                return x % n;
            }
        }
    }

    /// A uniform double in [0, 1) with 53 random bits.
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_outputs() {
        // the reference implementation's first outputs from state 1234567
        let mut x = 1_234_567u64;
        let out: Vec<u64> = (0..3).map(|_| splitmix64(&mut x)).collect();
        assert_eq!(
            out,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423
            ]
        );
    }

    #[test]
    fn xoshiro256pp_matches_the_reference_outputs() {
        // state {1, 2, 3, 4}: the reference implementation's first outputs
        let mut r = Rng { s: [1, 2, 3, 4] };
        let out: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert_eq!(
            out,
            [
                41_943_041,
                58_720_359,
                3_588_806_011_781_223,
                3_591_011_842_654_386
            ]
        );
    }

    #[test]
    fn below_is_in_range_and_streams_differ() {
        let mut a = Rng::stream(7, Purpose::Chance, 0);
        let mut b = Rng::stream(7, Purpose::Chance, 1);
        assert_ne!(a.next_u64(), b.next_u64());
        for n in [1u64, 2, 3, 7, 1000, u64::MAX] {
            for _ in 0..100 {
                assert!(a.below(n) < n);
            }
        }
        let u = a.unit();
        assert!((0.0..1.0).contains(&u));
    }
}
