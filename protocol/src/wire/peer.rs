//! Peer control messages: carried inside sealed data packets (flag `PEER_CONTROL`), so they
//! are authenticated with the pair key like data and cannot be forged by outsiders.
//!
//! ```text
//! Probe:    0x01 probe_id(8) sent_to(sockaddr)
//! ProbeAck: 0x02 probe_id(8) seen_from(sockaddr)
//! Keepalive: 0x03 (confirms a new pair session to its responder)
//! ```

use super::WireError;
use super::codec::{Reader, Writer};
use std::net::SocketAddr;

/// A peer-to-peer control message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerMessage {
    /// Path probe (hole punching, keepalive, RTT).
    Probe {
        /// Echoed in the ack.
        probe_id: u64,
        /// The address the sender sent this probe to.
        sent_to: SocketAddr,
    },
    /// Answer to a probe, sent to the address the probe came from.
    ProbeAck {
        /// The probe's id.
        probe_id: u64,
        /// Where the probe came from, as the responder saw it.
        seen_from: SocketAddr,
    },
    /// Nothing but proof that the sender holds the session that sealed it.
    Keepalive,
}

impl PeerMessage {
    /// Parses a decrypted peer message.
    pub fn parse(b: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(b);
        let msg = match r.u8()? {
            1 => Self::Probe {
                probe_id: r.u64()?,
                sent_to: r.sockaddr()?,
            },
            2 => Self::ProbeAck {
                probe_id: r.u64()?,
                seen_from: r.sockaddr()?,
            },
            3 => Self::Keepalive,
            v => return Err(WireError::UnknownType(v)),
        };
        r.finish()?;
        Ok(msg)
    }

    /// Encodes the message.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        match self {
            Self::Probe { probe_id, sent_to } => {
                w.u8(1);
                w.u64(*probe_id);
                w.sockaddr(*sent_to);
            }
            Self::ProbeAck {
                probe_id,
                seen_from,
            } => {
                w.u8(2);
                w.u64(*probe_id);
                w.sockaddr(*seen_from);
            }
            Self::Keepalive => w.u8(3),
        }
    }
}
