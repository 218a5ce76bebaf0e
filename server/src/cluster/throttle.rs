//! Replication throttles (KIP-73), Kafka's rules: a broker's `leader.replication.throttled.rate`
//! bounds the bytes it serves to out-of-sync followers of the partitions its topic configs'
//! `leader.replication.throttled.replicas` name for it (`<partition>:<broker>`, or `*`), and
//! `follower.replication.throttled.rate` the bytes it fetches for the partitions
//! `follower.replication.throttled.replicas` names for it while it is out of sync. In-sync
//! replicas are never throttled. `kafka-reassign-partitions --throttle` sets all four.
//!
//! While a rate is exceeded the leader answers a throttled partition with no records (after the
//! fetch's wait) and the follower leaves it out of its fetches; bytes served or fetched count
//! against the rate. Each rate is a token bucket holding at most one second of bytes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

/// Kafka's default: `Long.MAX_VALUE`, no limit (the configs' default too).
pub const UNLIMITED: u64 = i64::MAX as u64;

/// A byte rate shared by every shard of the broker.
#[derive(Debug)]
pub struct ByteRate {
    rate: AtomicU64,
    /// Bytes that may still go now (negative: owed), and when it was last refilled.
    bucket: Mutex<(f64, Instant)>,
}

impl ByteRate {
    pub fn new(rate: u64) -> ByteRate {
        ByteRate {
            rate: AtomicU64::new(rate),
            bucket: Mutex::new((rate as f64, Instant::now())),
        }
    }

    pub fn set_rate(&self, rate: u64) {
        if self.rate.swap(rate, Ordering::Relaxed) != rate {
            let mut b = self.bucket.lock().expect("throttle lock");
            *b = (b.0.min(rate as f64), Instant::now());
            tracing::info!(rate, "replication throttle rate set");
        }
    }

    /// Whether a rate is set at all (the common case, none, costs one atomic load).
    pub fn limited(&self) -> bool {
        self.rate.load(Ordering::Relaxed) < UNLIMITED
    }

    fn refill(&self, b: &mut (f64, Instant)) {
        let rate = self.rate.load(Ordering::Relaxed) as f64;
        let now = Instant::now();
        b.0 = (b.0 + rate * now.duration_since(b.1).as_secs_f64()).min(rate);
        b.1 = now;
    }

    /// Whether the bytes already sent used up the rate for now.
    pub fn exceeded(&self) -> bool {
        if !self.limited() {
            return false;
        }
        let mut b = self.bucket.lock().expect("throttle lock");
        self.refill(&mut b);
        b.0 <= 0.0
    }

    pub fn record(&self, bytes: usize) {
        if !self.limited() || bytes == 0 {
            return;
        }
        let mut b = self.bucket.lock().expect("throttle lock");
        self.refill(&mut b);
        b.0 -= bytes as f64;
    }
}

/// The broker's two replication throttles.
#[derive(Debug)]
pub struct Throttles {
    pub leader: ByteRate,
    pub follower: ByteRate,
}

impl Throttles {
    pub fn new(leader: u64, follower: u64) -> Throttles {
        Throttles {
            leader: ByteRate::new(leader),
            follower: ByteRate::new(follower),
        }
    }
}

/// Whether a topic's `key` (`leader.` or `follower.replication.throttled.replicas`) names
/// `partition` on broker `me`.
pub fn names(configs: &BTreeMap<String, String>, key: &str, partition: i32, me: i32) -> bool {
    let Some(v) = configs.get(key).map(|v| v.trim()) else {
        return false;
    };
    v == "*"
        || v.split(',').any(|e| {
            e.trim().split_once(':').is_some_and(|(p, b)| {
                p.trim().parse() == Ok(partition) && b.trim().parse() == Ok(me)
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_replicas_name_partitions_per_broker() {
        let mut c = BTreeMap::new();
        c.insert(LEADER_REPLICAS.to_string(), "0:1,0:2, 1:3".to_string());
        assert!(names(&c, LEADER_REPLICAS, 0, 2));
        assert!(names(&c, LEADER_REPLICAS, 1, 3));
        assert!(!names(&c, LEADER_REPLICAS, 1, 1));
        assert!(!names(&c, FOLLOWER_REPLICAS, 0, 1));
        c.insert(FOLLOWER_REPLICAS.to_string(), "*".to_string());
        assert!(names(&c, FOLLOWER_REPLICAS, 7, 9));
        use crate::config::topic::throttled_replicas as check;
        assert!(check(LEADER_REPLICAS, "0:1,2:3").is_ok());
        assert!(check(LEADER_REPLICAS, "").is_ok());
        assert!(check(LEADER_REPLICAS, "0-1").is_err());
    }

    #[test]
    fn a_rate_is_exceeded_once_a_second_of_bytes_went() {
        let r = ByteRate::new(UNLIMITED);
        r.record(1 << 30);
        assert!(!r.exceeded());
        r.set_rate(1000);
        assert!(!r.exceeded());
        r.record(1500);
        assert!(r.exceeded(), "1.5 s of bytes owed");
        r.set_rate(UNLIMITED);
        assert!(!r.exceeded());
    }
}
