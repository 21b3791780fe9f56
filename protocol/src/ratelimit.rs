//! Token buckets, alone or keyed (per source address, per edge).

use std::collections::BTreeMap;
use std::time::Instant;

/// A rate: `per_sec` tokens per second, at most `burst` saved up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Sustained tokens per second.
    pub per_sec: f64,
    /// Bucket size.
    pub burst: f64,
}

impl Rate {
    /// A rate of `per_sec` with a burst of `burst`.
    pub const fn new(per_sec: f64, burst: f64) -> Self {
        Self { per_sec, burst }
    }
}

/// One token bucket.
#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst,
            at: now,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, rate: Rate, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate.per_sec).min(rate.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// True when the bucket is full again (so it can be forgotten).
    pub fn is_idle(&self, rate: Rate, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + dt * rate.per_sec >= rate.burst
    }
}

/// Token buckets keyed by `K`, with idle buckets pruned.
#[derive(Debug)]
#[cfg_attr(fuzzing, derive(Clone))]
pub struct KeyedLimiter<K: Ord> {
    rate: Rate,
    buckets: BTreeMap<K, TokenBucket>,
    max_keys: usize,
}

impl<K: Ord + Clone> KeyedLimiter<K> {
    /// A limiter allowing `rate` per key and tracking at most `max_keys` keys (beyond that,
    /// new keys are refused until idle ones are pruned: an attacker cannot grow our memory).
    pub fn new(rate: Rate, max_keys: usize) -> Self {
        Self {
            rate,
            buckets: BTreeMap::new(),
            max_keys,
        }
    }

    /// Takes a token for `key`.
    pub fn allow(&mut self, key: &K, now: Instant) -> bool {
        if let Some(b) = self.buckets.get_mut(key) {
            return b.take(self.rate, now);
        }
        if self.buckets.len() >= self.max_keys {
            self.prune(now);
            if self.buckets.len() >= self.max_keys {
                return false;
            }
        }
        let mut b = TokenBucket::new(self.rate, now);
        let ok = b.take(self.rate, now);
        self.buckets.insert(key.clone(), b);
        ok
    }

    /// Forgets buckets that are full again.
    pub fn prune(&mut self, now: Instant) {
        let rate = self.rate;
        self.buckets.retain(|_, b| !b.is_idle(rate, now));
    }

    /// Number of tracked keys.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// True if no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills_over_time_and_caps_keys() {
        let t = Instant::now();
        let rate = Rate::new(1.0, 2.0);
        let mut l = KeyedLimiter::new(rate, 2);
        assert!(l.allow(&1, t) && l.allow(&1, t));
        assert!(!l.allow(&1, t), "burst spent");
        assert!(l.allow(&1, t + Duration::from_secs(1)), "refilled");
        assert!(l.allow(&2, t));
        assert!(!l.allow(&3, t), "key table full");
        assert!(l.allow(&3, t + Duration::from_secs(10)), "idle keys pruned");
    }
}
