//! Relaying data packets between edges that have no direct path. The supernode cannot read
//! them (end-to-end encryption); it checks who may send what to whom and forwards the bytes.

use super::Supernode;
use n2n_protocol::stats::DropReason;
use n2n_protocol::wire::data::DataPacket;
use std::net::SocketAddr;
use std::time::Instant;

impl Supernode {
    pub(super) fn handle_relay(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), DropReason> {
        let pkt = DataPacket::new_checked(bytes).map_err(|e| e.drop_reason())?;
        let rate = self.config.limits.relay_per_edge;
        let (src, dst) = (pkt.src(), pkt.dst());
        let dst_rec = self.edges.get(&dst).ok_or(DropReason::NoRoute)?;
        let (dst_endpoint, dst_community) = (dst_rec.endpoint, dst_rec.community.as_str());
        let src_rec = self.edges.get(&src).ok_or(DropReason::UnknownSession)?;
        // The source is bound to the endpoint its authenticated control traffic comes from.
        if src_rec.endpoint != from {
            return Err(DropReason::SpoofedSource);
        }
        if src_rec.community != dst_community {
            return Err(DropReason::WrongCommunity);
        }
        let src_rec = self.edges.get_mut(&src).ok_or(DropReason::UnknownSession)?;
        if !src_rec.relay_bucket.take(rate, now) {
            self.stats.limit_hits.relay += 1;
            return Err(DropReason::RateLimited);
        }
        src_rec.relayed_packets += 1;
        src_rec.relayed_bytes += bytes.len() as u64;
        self.stats.relayed_packets += 1;
        self.stats.relayed_bytes += bytes.len() as u64;
        self.send(dst_endpoint, bytes.to_vec());
        Ok(())
    }
}
