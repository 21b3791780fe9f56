//! Body types shared by several messages: key announcements, peer descriptions, registration.

use super::codec::{Reader, Writer};
use super::{MAX_CANDIDATES, MAX_COMMUNITY_LEN, MAX_DESC_LEN, WireError};
use crate::crypto::signing::{self, SIGNATURE_LEN, Signer};
use crate::types::{Candidate, EdgeId, Mac};
use std::net::{Ipv4Addr, SocketAddr};

/// An edge's current data-plane public key and everything peers learn about it with it,
/// bound together: its id, MAC, IP, name and candidates. Signed by the edge's identity key
/// (so one member cannot speak for another) and tagged with the community auth key (so the
/// supernode, which distributes it, can neither forge a member nor rebind one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAnnounce {
    /// The edge's Ed25519 identity key (peers pin it to id, MAC and IP).
    pub identity: [u8; 32],
    /// X25519 public key.
    pub public: [u8; 32],
    /// Rotation counter of this key (from 0 at each start).
    pub epoch: u32,
    /// When the announcing process started (Unix seconds): with `epoch`, orders an edge's
    /// announcements across restarts, so an older one cannot be passed off as current.
    pub boot: u32,
    /// The identity key's signature over the binding.
    pub signature: [u8; SIGNATURE_LEN],
    /// HMAC tag over the binding under the community authentication key.
    pub tag: [u8; 16],
}

/// What an announcement binds besides its keys. An edge that has no id or address yet (in
/// its REGISTER) binds 0 and 0.0.0.0; the supernode distributes it only once it is bound to
/// the id and address it assigned.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    /// Community name (an announcement made in one community means nothing in another).
    pub community: &'a str,
    /// The community's verifier (None: open).
    pub verifier: Option<[u8; 32]>,
    /// Edge id.
    pub id: EdgeId,
    /// TAP MAC.
    pub mac: Mac,
    /// Virtual IPv4 address.
    pub ip: Ipv4Addr,
    /// Description (host name).
    pub desc: &'a str,
    /// Candidates the edge advertises.
    pub candidates: &'a [Candidate],
}

const ANNOUNCE_SIGNATURE: &[u8] = b"n2n-rs/2 announce signature\0";
const ANNOUNCE_TAG: &[u8] = b"n2n-rs/2 announce tag\0";

impl KeyAnnounce {
    /// Encoded length.
    pub const LEN: usize = 32 + 32 + 4 + 4 + SIGNATURE_LEN + 16;

    /// Signs and tags the announcement of `public` (rotation `epoch` of the process started
    /// at `boot`) bound to `b`.
    pub fn new(
        identity: &Signer,
        auth: &[u8; 32],
        public: [u8; 32],
        (boot, epoch): (u32, u32),
        b: &Binding<'_>,
    ) -> Self {
        let mut a = Self {
            identity: identity.public(),
            public,
            epoch,
            boot,
            signature: [0; SIGNATURE_LEN],
            tag: [0; 16],
        };
        let bytes = a.bound_bytes(b);
        a.signature = identity.sign(ANNOUNCE_SIGNATURE, &[&bytes]);
        let full = crate::crypto::kdf::hmac(auth, &[ANNOUNCE_TAG, &bytes]);
        a.tag.copy_from_slice(&full[..16]);
        a
    }

    /// True if the identity key signed this announcement bound to `b` (what a supernode,
    /// which lacks the auth key, can check).
    pub fn signed_for(&self, b: &Binding<'_>) -> bool {
        signing::verify(
            &self.identity,
            ANNOUNCE_SIGNATURE,
            &[&self.bound_bytes(b)],
            &self.signature,
        )
    }

    /// True if a member of the community (auth key) made this announcement, signed by its
    /// identity key, bound to `b` (what a peer checks).
    pub fn valid_for(&self, auth: &[u8; 32], b: &Binding<'_>) -> bool {
        let bytes = self.bound_bytes(b);
        let full = crate::crypto::kdf::hmac(auth, &[ANNOUNCE_TAG, &bytes]);
        crate::crypto::kdf::ct_eq(&full[..16], &self.tag)
            && signing::verify(
                &self.identity,
                ANNOUNCE_SIGNATURE,
                &[&bytes],
                &self.signature,
            )
    }

    fn bound_bytes(&self, b: &Binding<'_>) -> Vec<u8> {
        let mut v = Vec::with_capacity(192);
        let mut w = Writer::new(&mut v);
        w.string(b.community);
        match &b.verifier {
            Some(k) => {
                w.u8(1);
                w.put(k);
            }
            None => w.u8(0),
        }
        w.u32(b.id);
        w.put(&b.mac.0);
        w.put(&b.ip.octets());
        w.string(b.desc);
        w.candidates(b.candidates);
        w.put(&self.identity);
        w.put(&self.public);
        w.u32(self.epoch);
        w.u32(self.boot);
        v
    }

    /// Order of an edge's announcements: later boot first, then later rotation.
    pub fn freshness(&self) -> (u32, u32) {
        (self.boot, self.epoch)
    }

    /// Decodes from a reader.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            identity: r.array()?,
            public: r.array()?,
            epoch: r.u32()?,
            boot: r.u32()?,
            signature: r.array()?,
            tag: r.array()?,
        })
    }

    /// Encodes into a writer.
    pub fn write(&self, w: &mut Writer<'_>) {
        w.put(&self.identity);
        w.put(&self.public);
        w.u32(self.epoch);
        w.u32(self.boot);
        w.put(&self.signature);
        w.put(&self.tag);
    }
}

/// What an edge learns about another member of its community.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// Supernode-assigned id.
    pub id: EdgeId,
    /// The peer's TAP MAC.
    pub mac: Mac,
    /// The peer's virtual IPv4 address.
    pub ip: Ipv4Addr,
    /// The peer's description (host name by default). Untrusted text.
    pub desc: String,
    /// The peer's public endpoint as the supernode sees it.
    pub observed: Option<SocketAddr>,
    /// Addresses the peer advertised itself (LAN, port-mapped).
    pub candidates: Vec<Candidate>,
    /// The peer's data-plane key.
    pub key: KeyAnnounce,
}

impl PeerInfo {
    /// Decodes from a reader.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let id = r.u32()?;
        let mac = r.mac()?;
        let ip = r.ipv4()?;
        let _reserved = r.u8()?;
        Ok(Self {
            id,
            mac,
            ip,
            desc: r.string(MAX_DESC_LEN)?,
            observed: r.opt_sockaddr()?,
            candidates: r.candidates(MAX_CANDIDATES)?,
            key: KeyAnnounce::read(r)?,
        })
    }

    /// Encodes into a writer.
    pub fn write(&self, w: &mut Writer<'_>) {
        w.u32(self.id);
        w.put(&self.mac.0);
        w.put(&self.ip.octets());
        w.u8(0);
        w.string(&self.desc);
        w.opt_sockaddr(self.observed);
        w.candidates(&self.candidates);
        self.key.write(w);
    }

    /// What this peer's announcement must be bound to, in `community` (with `verifier`).
    pub fn binding<'a>(&'a self, community: &'a str, verifier: Option<[u8; 32]>) -> Binding<'a> {
        Binding {
            community,
            verifier,
            id: self.id,
            mac: self.mac,
            ip: self.ip,
            desc: &self.desc,
            candidates: &self.candidates,
        }
    }

    /// Encoded length.
    pub fn encoded_len(&self) -> usize {
        let mut v = Vec::with_capacity(128);
        self.write(&mut Writer::new(&mut v));
        v.len()
    }
}

/// The sealed part of a registration request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterBody {
    /// Community to join.
    pub community: String,
    /// The community's public verifier (closed community), None for an open one.
    pub verifier: Option<[u8; 32]>,
    /// The edge's TAP MAC (stable per machine and community).
    pub mac: Mac,
    /// Description shown to peers.
    pub desc: String,
    /// A static virtual IP the edge asks for.
    pub requested_ip: Option<Ipv4Addr>,
    /// The edge's long-term identity key (Ed25519); its lease belongs to this key.
    pub identity: [u8; 32],
    /// LAN and port-mapped addresses.
    pub candidates: Vec<Candidate>,
    /// The edge's data-plane key.
    pub key: KeyAnnounce,
    /// The identity key's signature over the registration.
    pub identity_sig: [u8; SIGNATURE_LEN],
    /// The community admission key's signature over the registration (iff `verifier`).
    pub admission_sig: Option<[u8; SIGNATURE_LEN]>,
}

const REGISTER_IDENTITY: &[u8] = b"n2n-rs/2 register identity\0";
const REGISTER_ADMISSION: &[u8] = b"n2n-rs/2 register admission\0";

impl RegisterBody {
    /// Decodes a complete body.
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let community = r.string(MAX_COMMUNITY_LEN)?;
        if community.is_empty() {
            return Err(WireError::Invalid("empty community"));
        }
        let mac = r.mac()?;
        let desc = r.string(MAX_DESC_LEN)?;
        let flags = r.u8()?;
        if flags & !3 != 0 {
            return Err(WireError::Invalid("register flags"));
        }
        let requested_ip = if flags & 1 != 0 {
            Some(r.ipv4()?)
        } else {
            None
        };
        let verifier = if flags & 2 != 0 {
            Some(r.array()?)
        } else {
            None
        };
        let identity = r.array()?;
        let candidates = r.candidates(MAX_CANDIDATES)?;
        let key = KeyAnnounce::read(&mut r)?;
        let identity_sig = r.array()?;
        let admission_sig = match verifier {
            Some(_) => Some(r.array()?),
            None => None,
        };
        r.finish()?;
        Ok(Self {
            community,
            verifier,
            mac,
            desc,
            requested_ip,
            identity,
            candidates,
            key,
            identity_sig,
            admission_sig,
        })
    }

    /// Encodes the body.
    pub fn emit(&self, out: &mut Vec<u8>) {
        self.emit_signed_part(out);
        out.extend_from_slice(&self.identity_sig);
        if self.verifier.is_some() {
            out.extend_from_slice(&self.admission_sig.unwrap_or([0; SIGNATURE_LEN]));
        }
    }

    /// Encodes everything the signatures cover.
    fn emit_signed_part(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.string(&self.community);
        w.put(&self.mac.0);
        w.string(&self.desc);
        w.u8(u8::from(self.requested_ip.is_some()) | (u8::from(self.verifier.is_some()) << 1));
        if let Some(ip) = self.requested_ip {
            w.put(&ip.octets());
        }
        if let Some(v) = &self.verifier {
            w.put(v);
        }
        w.put(&self.identity);
        w.candidates(&self.candidates);
        self.key.write(&mut w);
    }

    /// Signs the body for the supernode session (`sn_key`) and registration key (`edge_key`)
    /// it is sealed for, so it cannot be replayed to another supernode or session. Sets
    /// `identity` and `verifier` from the keys first.
    pub fn sign(
        &mut self,
        identity: &Signer,
        admission: Option<&Signer>,
        sn_key: &[u8; 32],
        edge_key: &[u8; 32],
    ) {
        self.identity = identity.public();
        self.verifier = admission.map(Signer::public);
        let mut part = Vec::with_capacity(256);
        self.emit_signed_part(&mut part);
        let parts: [&[u8]; 3] = [sn_key, edge_key, &part];
        self.identity_sig = identity.sign(REGISTER_IDENTITY, &parts);
        self.admission_sig = admission.map(|a| a.sign(REGISTER_ADMISSION, &parts));
    }

    /// True if the identity signature, and the admission signature when the body names a
    /// verifier, are valid for this supernode session and registration key.
    pub fn signatures_valid(&self, sn_key: &[u8; 32], edge_key: &[u8; 32]) -> bool {
        let mut part = Vec::with_capacity(256);
        self.emit_signed_part(&mut part);
        let parts: [&[u8]; 3] = [sn_key, edge_key, &part];
        let admitted = match (&self.verifier, &self.admission_sig) {
            (Some(v), Some(sig)) => signing::verify(v, REGISTER_ADMISSION, &parts, sig),
            (None, None) => true,
            _ => false,
        };
        admitted
            && signing::verify(
                &self.identity,
                REGISTER_IDENTITY,
                &parts,
                &self.identity_sig,
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::CandidateKind;

    #[test]
    fn an_announcement_is_valid_only_for_what_it_was_bound_to() {
        let me = Signer::from_seed(&[1; 32]);
        let auth = [7u8; 32];
        let cands = [Candidate {
            kind: CandidateKind::Lan,
            addr: "192.168.1.2:7000".parse().unwrap(),
        }];
        let b = Binding {
            community: "acme",
            verifier: Some([3; 32]),
            id: 5,
            mac: Mac([2, 0, 0, 0, 0, 5]),
            ip: Ipv4Addr::new(10, 0, 0, 5),
            desc: "nas",
            candidates: &cands,
        };
        let a = KeyAnnounce::new(&me, &auth, [9; 32], (100, 3), &b);
        assert!(a.valid_for(&auth, &b) && a.signed_for(&b));
        assert!(!a.valid_for(&[8; 32], &b), "another community's auth key");
        assert!(a.signed_for(&b), "the supernode checks only the signature");
        let other = [Candidate {
            kind: CandidateKind::Lan,
            addr: "203.0.113.1:7000".parse().unwrap(),
        }];
        for rebound in [
            Binding { id: 6, ..b },
            Binding {
                community: "other",
                ..b
            },
            Binding {
                verifier: Some([4; 32]),
                ..b
            },
            Binding {
                mac: Mac([2, 0, 0, 0, 0, 6]),
                ..b
            },
            Binding {
                ip: Ipv4Addr::new(10, 0, 0, 6),
                ..b
            },
            Binding {
                desc: "printer",
                ..b
            },
            Binding {
                candidates: &other,
                ..b
            },
        ] {
            assert!(!a.valid_for(&auth, &rebound) && !a.signed_for(&rebound));
        }
        let mut forged = a;
        forged.identity = Signer::from_seed(&[2; 32]).public();
        assert!(
            !forged.valid_for(&auth, &b),
            "another identity cannot claim it"
        );
        let mut replayed_epoch = a;
        replayed_epoch.epoch = 4;
        assert!(!replayed_epoch.valid_for(&auth, &b));
        let mut other_boot = a;
        other_boot.boot = 101;
        assert!(!other_boot.valid_for(&auth, &b), "the boot is bound too");
    }
}
