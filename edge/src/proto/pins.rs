//! Peer identity pinning: the first identity key seen with an edge id, a MAC or an IP keeps
//! them, so a member (or a supernode) cannot put another identity behind a present member's
//! address, even with a validly signed announcement. A pin lapses once its member has been
//! gone for [`PIN_LAPSES_AFTER`]: a reinstalled member whose lease the operator released
//! comes back without every peer restarting. (So a hostile supernode that hides a member
//! from us that long can then hand its address to another member: the threat model says so.)
//! Pins outlive a restart of the edge: the shell saves [`PinnedPeer`]s in the state
//! directory and hands them back to the next process, where each counts as departed since it
//! was last seen.

use n2n_protocol::types::{EdgeId, Mac};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// How long a departed member's pins outlive it.
pub const PIN_LAPSES_AFTER: Duration = Duration::from_secs(600);

/// A pin as it outlives the process: an identity key bound to an id, MAC and IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedPeer {
    /// The member's identity key.
    pub identity: [u8; 32],
    /// Its edge id.
    pub id: EdgeId,
    /// Its MAC.
    pub mac: Mac,
    /// Its overlay IP.
    pub ip: Ipv4Addr,
    /// How long ago it left (None: present when the snapshot was taken).
    pub away: Option<Duration>,
}

/// Pins by identity, and the identity that owns each pinned id, MAC and IP.
#[derive(Debug, Default)]
pub(super) struct Pins {
    by_identity: HashMap<[u8; 32], (EdgeId, Mac, Ipv4Addr)>,
    id_owner: HashMap<EdgeId, [u8; 32]>,
    mac_owner: HashMap<Mac, [u8; 32]>,
    ip_owner: HashMap<Ipv4Addr, [u8; 32]>,
    gone_since: HashMap<[u8; 32], Instant>,
    /// Set when a pin is added, lapses or its member leaves or returns.
    changed: bool,
}

impl Pins {
    /// Pins from an earlier process: each counts as departed since it was last seen, so it
    /// lapses [`PIN_LAPSES_AFTER`] from then unless its member comes back. Records that
    /// contradict an earlier one are skipped.
    pub(super) fn restore(&mut self, now: Instant, saved: &[PinnedPeer]) {
        for p in saved {
            let away = p.away.unwrap_or_default();
            if away >= PIN_LAPSES_AFTER {
                continue;
            }
            if self.admit(now, p.identity, p.id, p.mac, p.ip).is_ok() {
                self.gone_since
                    .insert(p.identity, now.checked_sub(away).unwrap_or(now));
            }
        }
        self.changed = false;
    }

    /// Every pin, for the shell to save.
    pub(super) fn snapshot(&self, now: Instant) -> Vec<PinnedPeer> {
        let mut all: Vec<PinnedPeer> = self
            .by_identity
            .iter()
            .map(|(identity, &(id, mac, ip))| PinnedPeer {
                identity: *identity,
                id,
                mac,
                ip,
                away: self
                    .gone_since
                    .get(identity)
                    .map(|t| now.saturating_duration_since(*t)),
            })
            .collect();
        all.sort_by_key(|p| p.id);
        all
    }

    /// True once after any change since the last call.
    pub(super) fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// True if a pinned member is present (its saved "last seen" grows stale).
    pub(super) fn any_present(&self) -> bool {
        self.by_identity.len() > self.gone_since.len()
    }

    /// Accepts `identity` at (id, MAC, IP) if that agrees with every pin, pinning it the first
    /// time; else says what it contradicts.
    pub(super) fn admit(
        &mut self,
        now: Instant,
        identity: [u8; 32],
        id: EdgeId,
        mac: Mac,
        ip: Ipv4Addr,
    ) -> Result<(), String> {
        let lapsed: Vec<[u8; 32]> = self
            .gone_since
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(**t) >= PIN_LAPSES_AFTER)
            .map(|(k, _)| *k)
            .collect();
        for k in lapsed {
            self.forget(&k);
        }
        if let Some(&(pid, pmac, pip)) = self.by_identity.get(&identity) {
            if (pid, pmac, pip) == (id, mac, ip) {
                self.changed |= self.gone_since.remove(&identity).is_some();
                return Ok(());
            }
            if !self.gone_since.contains_key(&identity) {
                return Err(format!(
                    "an identity pinned to id {pid}, {pmac}, {pip} now claims id {id}, {mac}, {ip}"
                ));
            }
            // A member that left comes back elsewhere (a new lease): its own signature says
            // so; its old pins go.
            self.forget(&identity);
        }
        let taken = [
            ("id", self.id_owner.get(&id)),
            ("MAC", self.mac_owner.get(&mac)),
            ("IP", self.ip_owner.get(&ip)),
        ];
        if let Some((what, _)) = taken
            .iter()
            .find(|(_, owner)| owner.is_some_and(|o| *o != identity))
        {
            return Err(format!(
                "id {id}, {mac}, {ip}: its {what} is pinned to another member's identity key"
            ));
        }
        self.gone_since.remove(&identity);
        self.changed = true;
        self.by_identity.insert(identity, (id, mac, ip));
        self.id_owner.insert(id, identity);
        self.mac_owner.insert(mac, identity);
        self.ip_owner.insert(ip, identity);
        Ok(())
    }

    /// The member with `identity` left: its pins lapse after [`PIN_LAPSES_AFTER`] unless it
    /// comes back.
    pub(super) fn departed(&mut self, now: Instant, identity: [u8; 32]) {
        if self.by_identity.contains_key(&identity) && !self.gone_since.contains_key(&identity) {
            self.gone_since.insert(identity, now);
            self.changed = true;
        }
    }

    fn forget(&mut self, identity: &[u8; 32]) {
        self.changed = true;
        self.gone_since.remove(identity);
        if let Some((id, mac, ip)) = self.by_identity.remove(identity) {
            self.id_owner.remove(&id);
            self.mac_owner.remove(&mac);
            self.ip_owner.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sight_pins_and_contradictions_are_refused() {
        let now = Instant::now();
        let mut p = Pins::default();
        let (mac1, mac2) = (Mac([2, 0, 0, 0, 0, 1]), Mac([2, 0, 0, 0, 0, 2]));
        let (ip1, ip2) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        assert!(p.admit(now, [1; 32], 1, mac1, ip1).is_ok());
        assert!(p.admit(now, [1; 32], 1, mac1, ip1).is_ok(), "again: fine");
        assert!(
            p.admit(now, [1; 32], 2, mac1, ip1).is_err(),
            "identity moved"
        );
        assert!(p.admit(now, [2; 32], 1, mac2, ip2).is_err(), "id taken");
        assert!(p.admit(now, [2; 32], 2, mac1, ip2).is_err(), "MAC taken");
        assert!(p.admit(now, [2; 32], 2, mac2, ip1).is_err(), "IP taken");
        assert!(p.admit(now, [2; 32], 2, mac2, ip2).is_ok());
        // Member 1 leaves; until its pins lapse, nobody takes its address.
        p.departed(now, [1; 32]);
        let later = now + PIN_LAPSES_AFTER;
        assert!(
            p.admit(later - Duration::from_secs(1), [3; 32], 1, mac1, ip1)
                .is_err()
        );
        assert!(p.admit(later, [3; 32], 1, mac1, ip1).is_ok(), "lapsed");
        // A member that comes back in time keeps its pins.
        p.departed(later, [2; 32]);
        assert!(p.admit(later, [2; 32], 2, mac2, ip2).is_ok());
        let much_later = later + 2 * PIN_LAPSES_AFTER;
        assert!(p.admit(much_later, [4; 32], 2, mac2, ip2).is_err());
        // A refused claim does not keep a departed member's pins alive, and the member
        // itself may come back with a new lease.
        let (mac5, ip5) = (Mac([2, 0, 0, 0, 0, 5]), Ipv4Addr::new(10, 0, 0, 5));
        assert!(p.admit(much_later, [5; 32], 5, mac5, ip5).is_ok());
        p.departed(much_later, [5; 32]);
        assert!(
            p.admit(much_later, [5; 32], 6, mac5, Ipv4Addr::new(10, 0, 0, 6))
                .is_ok()
        );
        p.departed(much_later, [5; 32]);
        assert!(p.admit(much_later, [6; 32], 6, mac5, ip5).is_err());
        let end = much_later + PIN_LAPSES_AFTER;
        assert!(
            p.admit(end, [6; 32], 6, mac5, Ipv4Addr::new(10, 0, 0, 6))
                .is_ok()
        );
    }

    #[test]
    fn pins_outlive_a_restart_and_lapse_from_when_their_member_was_last_seen() {
        let now = Instant::now() + 2 * PIN_LAPSES_AFTER;
        let mut p = Pins::default();
        let (mac1, mac2) = (Mac([2, 0, 0, 0, 0, 1]), Mac([2, 0, 0, 0, 0, 2]));
        let (ip1, ip2) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        assert!(p.admit(now, [1; 32], 1, mac1, ip1).is_ok());
        assert!(p.admit(now, [2; 32], 2, mac2, ip2).is_ok());
        assert!(p.take_changed() && !p.take_changed());
        assert!(p.any_present());
        p.departed(now, [2; 32]);
        assert!(p.take_changed());
        let later = now + Duration::from_secs(60);
        let saved = p.snapshot(later);
        assert_eq!(saved.len(), 2);
        assert_eq!(saved[0].away, None);
        assert_eq!(saved[1].away, Some(Duration::from_secs(60)));
        // The next process, 5 minutes on.
        let next = later + Duration::from_secs(300);
        let mut q = Pins::default();
        let aged: Vec<PinnedPeer> = saved
            .iter()
            .map(|s| PinnedPeer {
                away: Some(s.away.unwrap_or_default() + Duration::from_secs(300)),
                ..s.clone()
            })
            .collect();
        q.restore(next, &aged);
        assert!(!q.take_changed() && !q.any_present());
        assert!(q.admit(next, [3; 32], 1, mac1, ip1).is_err(), "1 is pinned");
        assert!(q.admit(next, [3; 32], 2, mac2, ip2).is_err(), "2 is pinned");
        // 2 left 6 minutes before the restart: its pins lapse 4 minutes after it.
        let lapse2 = next + Duration::from_secs(240);
        assert!(q.admit(lapse2, [3; 32], 2, mac2, ip2).is_ok());
        assert!(
            q.admit(lapse2, [3; 32], 1, mac1, ip1).is_err(),
            "3 holds 2's pins"
        );
        assert!(
            q.admit(lapse2, [4; 32], 1, mac1, ip1).is_err(),
            "1 is pinned"
        );
        assert!(
            q.admit(next + PIN_LAPSES_AFTER, [4; 32], 1, mac1, ip1)
                .is_ok()
        );
        // Pins older than the lapse are not restored at all.
        let mut r = Pins::default();
        r.restore(
            next,
            &[PinnedPeer {
                away: Some(PIN_LAPSES_AFTER),
                ..saved[0].clone()
            }],
        );
        assert!(r.snapshot(next).is_empty());
    }
}
