//! The seeded RNG every protocol core owns (no global randomness inside a core).

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

/// A cryptographically strong RNG seeded by the shell (from the OS) or by a test (fixed seed).
#[cfg_attr(fuzzing, derive(Clone))]
pub struct CoreRng(ChaCha20Rng);

impl CoreRng {
    /// Creates the RNG from a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(ChaCha20Rng::from_seed(seed))
    }

    /// Creates the RNG from a small integer seed, for simulations and tests.
    pub fn seeded(seed: u64) -> Self {
        Self(ChaCha20Rng::seed_from_u64(seed))
    }

    /// Fills `dst` with random bytes.
    pub fn fill(&mut self, dst: &mut [u8]) {
        self.0.fill_bytes(dst);
    }

    /// Returns `N` random bytes.
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        self.0.fill_bytes(&mut out);
        out
    }

    /// Returns a random `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Returns a random value in `0..n` (`n` > 0); the bias is negligible for small `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n.max(1)
    }

    /// Gives access to the inner generator for crates that take a `rand_core` RNG.
    pub fn inner(&mut self) -> &mut ChaCha20Rng {
        &mut self.0
    }
}
