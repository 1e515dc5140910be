//! BEP 15 connection ids that cannot be forged and need no table.
//!
//! A connection id is a keyed MAC (SipHash-2-4 under a random 128-bit key
//! drawn at start-up) of the client's IP address and of a one-minute time
//! bucket. A client can only learn a valid id by receiving the connect
//! response at its own address, which is what stops announces from spoofed
//! addresses. The port is left out on purpose: libtorrent keeps one
//! connection id per tracker for the whole process and reuses it from
//! other sockets (other sessions, other local ports), and the IP is all
//! the spoofing protection needs. The
//! tracker keeps no per-client state, so a flood of connects costs no
//! memory. An id is accepted in the bucket it was issued in and the two
//! after it: valid for at least two minutes (as BEP 15 asks) and at most
//! three.

use std::hash::Hasher;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use siphasher::sip::SipHasher24;

/// Seconds per time bucket.
pub const BUCKET_SECS: u64 = 60;
/// Buckets after the issuing one in which an id is still accepted.
pub const GRACE_BUCKETS: u64 = 2;

/// Issues and checks connection ids.
pub struct ConnectionIds {
    key: (u64, u64),
    epoch: Instant,
}

impl ConnectionIds {
    /// Ids under a fresh random key (ids do not survive a restart; clients
    /// simply connect again).
    pub fn new() -> Result<Self, getrandom::Error> {
        Ok(Self::with_key((getrandom::u64()?, getrandom::u64()?)))
    }

    /// Ids under a given key (tests).
    pub fn with_key(key: (u64, u64)) -> Self {
        ConnectionIds {
            key,
            epoch: Instant::now(),
        }
    }

    /// The current time bucket.
    pub fn bucket_now(&self) -> u64 {
        self.epoch.elapsed().as_secs() / BUCKET_SECS
    }

    /// The id for `client`'s IP address in time bucket `bucket`.
    pub fn issue(&self, client: SocketAddr, bucket: u64) -> u64 {
        let mut h = SipHasher24::new_with_keys(self.key.0, self.key.1);
        h.write_u64(bucket);
        let ip = match crate::tracker::canonical(client.ip()) {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        h.write(&ip.octets());
        h.finish()
    }

    /// True when `id` was issued to `client` in bucket `bucket` or in one of
    /// the [`GRACE_BUCKETS`] before it.
    pub fn check(&self, id: u64, client: SocketAddr, bucket: u64) -> bool {
        (bucket.saturating_sub(GRACE_BUCKETS)..=bucket).any(|b| self.issue(client, b) == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn valid_for_two_to_three_minutes_at_the_same_ip_only() {
        let ids = ConnectionIds::with_key((1, 2));
        let a = addr("192.0.2.1:6881");
        let id = ids.issue(a, 10);
        assert!(ids.check(id, a, 10));
        assert!(ids.check(id, a, 11));
        assert!(ids.check(id, a, 12));
        assert!(!ids.check(id, a, 13), "expired after the grace buckets");
        assert!(!ids.check(id, a, 9), "not valid before it was issued");
        assert!(!ids.check(id, addr("192.0.2.2:6881"), 10), "other address");
        assert!(
            ids.check(id, addr("192.0.2.1:6882"), 10),
            "same IP, other port"
        );
        // An IPv4 client seen through a dual-stack socket is the same client.
        assert!(ids.check(id, addr("[::ffff:192.0.2.1]:6881"), 10));
    }

    #[test]
    fn the_key_matters() {
        let a = addr("[2001:db8::1]:1");
        let id = ConnectionIds::with_key((1, 2)).issue(a, 0);
        assert!(!ConnectionIds::with_key((1, 3)).check(id, a, 0));
        let r1 = ConnectionIds::new().unwrap();
        let r2 = ConnectionIds::new().unwrap();
        assert_ne!(r1.issue(a, 0), r2.issue(a, 0), "keys are random");
    }
}
