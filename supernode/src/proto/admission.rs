//! Which community a registration joins: the operator's verifiers, closed communities
//! keyed by their verifier, v1 communities adopted once the operator lists a verifier, and
//! a new community's subnet.

use super::{
    CommunityRecord, Event, Supernode, VERIFIER_SEPARATOR, base_name, community, community_key,
};
use n2n_protocol::wire::messages::RegisterBody;
use n2n_protocol::wire::sealed::NakCode;

impl Supernode {
    /// Which community a signed registration joins (its key), or why it may not: names the
    /// operator configured with verifiers admit only those; any other name is open without a
    /// verifier and, with one, names the community of that verifier.
    pub(super) fn admission(&self, body: &RegisterBody) -> Result<String, (NakCode, String)> {
        let name = &body.community;
        if name.contains(VERIFIER_SEPARATOR) {
            let reason = format!("community names cannot contain {VERIFIER_SEPARATOR:?}");
            return Err((NakCode::BadRequest, reason));
        }
        let policy = self.config.communities.get(name);
        if policy.is_none() && !self.config.allow_open {
            let reason = format!("community {name:?} is not served by this supernode");
            return Err((NakCode::AdmissionRefused, reason));
        }
        let configured = policy.map(|p| p.verifiers.as_slice()).unwrap_or_default();
        match (&body.verifier, configured.is_empty()) {
            (Some(v), false) if !configured.contains(v) => Err((
                NakCode::AdmissionRefused,
                format!("admission to community {name:?} refused: wrong community passphrase"),
            )),
            (None, false) => Err((
                NakCode::AdmissionRefused,
                format!("community {name:?} is closed: set its passphrase"),
            )),
            // The operator configured this name without verifiers: it is theirs, open; a
            // passphrase group must not squat it (or its fixed subnet).
            (Some(_), true) if policy.is_some() => Err((
                NakCode::AdmissionRefused,
                format!(
                    "community {name:?} is configured open on this supernode: join it without a passphrase, or ask the operator to list your verifier under communities.{name}.verifiers"
                ),
            )),
            (verifier, _) => {
                let key = community_key(name, verifier.as_ref(), policy);
                // A restored `name~…` community learns its full verifier again from the
                // first member; after that, another one with the same 16-byte prefix is refused.
                let known = self.communities.get(&key).and_then(|c| c.verifier);
                if key != *name && known.is_some_and(|k| Some(k) != *verifier) {
                    let reason = format!("community {key:?} belongs to another verifier");
                    return Err((NakCode::AdmissionRefused, reason));
                }
                Ok(key)
            }
        }
    }

    /// An empty community that the new community `key` takes over with its subnet and leases:
    /// the `name~…` community of a verifier the operator now lists for `name` (leases stay
    /// when a community gets configured). Nothing is adopted without the operator: leases of a
    /// protocol v1 community (bare name) stay with that name, for the members of the verifiers
    /// the operator lists for it.
    fn adoptable(&self, key: &str) -> Option<String> {
        let name = base_name(key);
        if key != name {
            return None;
        }
        let listed = &self.config.communities.get(name)?.verifiers;
        self.communities
            .values()
            .find(|c| {
                base_name(&c.name) == name
                    && c.members.is_empty()
                    && c.verifier.is_some_and(|v| listed.contains(&v))
            })
            .map(|c| c.name.clone())
    }

    /// Moves community `old` (subnet, leases, ids) to the key `key`.
    fn rename_community(&mut self, old: &str, key: &str, verifier: Option<[u8; 32]>) {
        let Some(mut c) = self.communities.remove(old) else {
            return;
        };
        c.name = key.to_string();
        c.verifier = verifier.filter(|_| base_name(key) != key);
        c.policy = self
            .config
            .communities
            .get(base_name(key))
            .cloned()
            .unwrap_or_default();
        for l in c.leases.values_mut() {
            l.community = key.to_string();
        }
        self.events.push_back(Event::CommunityRenamed {
            from: old.to_string(),
            to: c.record(),
        });
        self.communities.insert(key.to_string(), c);
    }

    /// Creates the community with a subnet if it does not exist; false if no subnet is free.
    pub(super) fn ensure_community(&mut self, name: &str, verifier: Option<[u8; 32]>) -> bool {
        let keyed_by_verifier = base_name(name) != name;
        if let Some(c) = self.communities.get_mut(name) {
            if keyed_by_verifier && c.verifier.is_none() {
                c.verifier = verifier;
                let rec = c.record();
                self.events.push_back(Event::CommunityCreated(rec));
            }
            return true;
        }
        if let Some(old) = self.adoptable(name) {
            self.rename_community(&old, name, verifier);
            return true;
        }
        let policy = self
            .config
            .communities
            .get(base_name(name))
            .cloned()
            .unwrap_or_default();
        let taken = &self.subnets;
        let chosen = match policy.subnet {
            Some((net, prefix)) if !taken.contains(&net) => Some((net, prefix)),
            Some(_) => None,
            None => community::choose_subnet(
                name,
                self.config.subnet_pool,
                self.config.community_prefix,
                taken,
            )
            .map(|s| (s, self.config.community_prefix)),
        };
        let Some((subnet, prefix)) = chosen else {
            return false;
        };
        let rec = CommunityRecord {
            name: name.to_string(),
            subnet,
            prefix,
            verifier: verifier.filter(|_| keyed_by_verifier),
        };
        self.add_community(&rec, policy);
        self.events.push_back(Event::CommunityCreated(rec));
        true
    }
}
