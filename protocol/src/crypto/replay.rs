//! A sliding replay window over 64-bit counters (RFC 6479 style bitmap).

/// Bits the data-path window remembers behind the highest counter seen.
pub const WINDOW: u64 = 8192;

/// The data-path window: 8192 counters (1 KiB), as WireGuard's, for reordering on fast
/// multi-queue paths and between an edge's packet workers.
pub type ReplayWindow = Window<128>;

const _: () = assert!(Window::<128>::SIZE == WINDOW);

/// The control-channel window: 128 counters (control messages are few and rarely reordered).
pub type SmallReplayWindow = Window<2>;

/// Accepts each counter at most once, and nothing older than `64 * WORDS` behind the newest.
#[derive(Clone, Debug)]
pub struct Window<const WORDS: usize> {
    top: u64,
    seen_any: bool,
    bits: [u64; WORDS],
}

impl<const WORDS: usize> Default for Window<WORDS> {
    fn default() -> Self {
        Self {
            top: 0,
            seen_any: false,
            bits: [0; WORDS],
        }
    }
}

impl<const WORDS: usize> Window<WORDS> {
    const SIZE: u64 = 64 * WORDS as u64;

    /// True if `counter` would be accepted (does not record it).
    pub fn check(&self, counter: u64) -> bool {
        if !self.seen_any || counter > self.top {
            return true;
        }
        if self.top - counter >= Self::SIZE {
            return false;
        }
        let (w, b) = Self::slot(counter);
        self.bits.get(w).is_some_and(|word| word & (1 << b) == 0)
    }

    /// Records `counter` if acceptable; returns false for replays and too-old counters.
    /// Call only after the packet authenticated, so forgeries cannot move the window.
    pub fn accept(&mut self, counter: u64) -> bool {
        if !self.check(counter) {
            return false;
        }
        if !self.seen_any || counter > self.top {
            let from = if self.seen_any { self.top + 1 } else { counter };
            if counter - from >= Self::SIZE {
                self.bits = [0; WORDS];
            } else {
                for c in from..=counter {
                    let (w, b) = Self::slot(c);
                    if let Some(word) = self.bits.get_mut(w) {
                        *word &= !(1 << b);
                    }
                }
            }
            self.top = counter;
            self.seen_any = true;
        }
        let (w, b) = Self::slot(counter);
        if let Some(word) = self.bits.get_mut(w) {
            *word |= 1 << b;
        }
        true
    }

    fn slot(counter: u64) -> (usize, u64) {
        (((counter / 64) % WORDS as u64) as usize, counter % 64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_window_is_128_counters() {
        let mut w = SmallReplayWindow::default();
        assert!(w.accept(200));
        assert!(w.accept(73));
        assert!(!w.accept(72));
    }

    #[test]
    fn accepts_once_reorders_and_rejects_old() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(5));
        assert!(!w.accept(5));
        assert!(w.accept(3));
        assert!(w.accept(100));
        assert!(w.accept(4));
        assert!(!w.accept(3));
        assert!(w.accept(100 + WINDOW));
        assert!(!w.accept(100), "beyond the window");
        assert!(w.accept(100 + WINDOW - 1));
        assert!(w.accept(u64::MAX));
        assert!(!w.accept(u64::MAX));
    }

    /// Several packet workers seal for one peer, each taking its counter as it seals: a
    /// worker preempted between sealing and sending can be thousands of counters behind
    /// the others (80 ms at 100,000 packets/s is 8000). Its packet must still open.
    #[test]
    fn a_packet_sealed_8000_counters_before_those_that_overtook_it_is_accepted() {
        let mut w = ReplayWindow::default();
        for c in 1..=8000 {
            assert!(w.accept(c));
        }
        assert!(w.accept(0));
        assert!(!w.accept(0));
    }

    proptest! {
        #[test]
        fn never_accepts_a_counter_twice(seq in proptest::collection::vec(0u64..5000, 1..400)) {
            let mut w = ReplayWindow::default();
            let mut accepted = std::collections::BTreeSet::new();
            let mut top = 0u64;
            for c in seq {
                let ok = w.accept(c);
                if ok {
                    prop_assert!(accepted.insert(c), "counter {} accepted twice", c);
                    top = top.max(c);
                } else {
                    prop_assert!(accepted.contains(&c) || top - c >= WINDOW);
                }
            }
        }
    }
}
