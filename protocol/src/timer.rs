//! A table of named timers: each core keeps one deadline per timer name.

use std::collections::BTreeMap;
use std::time::Instant;

/// Deadlines keyed by a timer name (an enum of the owning core).
#[derive(Debug, Clone)]
pub struct TimerTable<T: Ord + Copy> {
    deadlines: BTreeMap<T, Instant>,
}

impl<T: Ord + Copy> Default for TimerTable<T> {
    fn default() -> Self {
        Self {
            deadlines: BTreeMap::new(),
        }
    }
}

impl<T: Ord + Copy> TimerTable<T> {
    /// Sets (or moves) timer `name` to fire at `at`.
    pub fn set(&mut self, name: T, at: Instant) {
        self.deadlines.insert(name, at);
    }

    /// Sets timer `name` to `at` unless it is already due earlier.
    pub fn set_earliest(&mut self, name: T, at: Instant) {
        let e = self.deadlines.entry(name).or_insert(at);
        if at < *e {
            *e = at;
        }
    }

    /// Cancels timer `name`.
    pub fn cancel(&mut self, name: T) {
        self.deadlines.remove(&name);
    }

    /// The deadline of timer `name`, if set.
    pub fn get(&self, name: T) -> Option<Instant> {
        self.deadlines.get(&name).copied()
    }

    /// The earliest deadline of all timers.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.values().min().copied()
    }

    /// Removes and returns every timer due at `now`, earliest first.
    pub fn expired(&mut self, now: Instant) -> Vec<T> {
        let mut due: Vec<(Instant, T)> = self
            .deadlines
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(n, at)| (*at, *n))
            .collect();
        due.sort_by_key(|d| d.0);
        for (_, n) in &due {
            self.deadlines.remove(n);
        }
        due.into_iter().map(|(_, n)| n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expired_returns_due_timers_in_order_and_removes_them() {
        let t0 = Instant::now();
        let mut t = TimerTable::default();
        t.set(2u8, t0 + Duration::from_secs(2));
        t.set(1u8, t0 + Duration::from_secs(1));
        t.set(3u8, t0 + Duration::from_secs(5));
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.expired(t0 + Duration::from_secs(3)), vec![1, 2]);
        assert_eq!(t.expired(t0 + Duration::from_secs(3)), Vec::<u8>::new());
        t.set_earliest(3, t0 + Duration::from_secs(9));
        assert_eq!(t.get(3), Some(t0 + Duration::from_secs(5)));
    }
}
