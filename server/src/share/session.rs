//! Share sessions (KIP-932): a member's ShareFetch requests to one broker name only what
//! changed since the last (partitions added, partitions forgotten), under an epoch: 0 opens a
//! session with the partitions named, each later request carries the next epoch, -1 closes it.
//! Sessions live on the shard of the connection that opened them; a client that reconnects
//! elsewhere is told SHARE_SESSION_NOT_FOUND and opens a new one, as after a broker restart.

use crate::error_code as ec;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

pub type Tp = (String, i32);

struct Session {
    /// The epoch the next request must carry.
    next_epoch: i32,
    partitions: BTreeSet<Tp>,
}

thread_local! {
    static SESSIONS: RefCell<HashMap<(String, String), Session>> = RefCell::new(HashMap::new());
}

fn bump(e: i32) -> i32 {
    if e == i32::MAX {
        1
    } else {
        e + 1
    }
}

/// Applies a ShareFetch's session part: returns the session's partitions after it (for epoch
/// -1, those it had, plus the request's; the session is then gone).
pub fn fetch(
    group: &str,
    member: &str,
    epoch: i32,
    add: &[Tp],
    forget: &[Tp],
    max_sessions: usize,
) -> Result<Vec<Tp>, i16> {
    SESSIONS.with(|s| {
        let mut s = s.borrow_mut();
        let key = (group.to_string(), member.to_string());
        match epoch {
            0 => {
                if !s.contains_key(&key) && s.len() >= max_sessions {
                    return Err(ec::SHARE_SESSION_LIMIT_REACHED);
                }
                let partitions: BTreeSet<Tp> = add.iter().cloned().collect();
                let out = partitions.iter().cloned().collect();
                s.insert(
                    key,
                    Session {
                        next_epoch: 1,
                        partitions,
                    },
                );
                Ok(out)
            }
            -1 => {
                let mut all: BTreeSet<Tp> =
                    s.remove(&key).map(|x| x.partitions).unwrap_or_default();
                all.extend(add.iter().cloned());
                Ok(all.into_iter().collect())
            }
            e if e < -1 => Err(ec::INVALID_SHARE_SESSION_EPOCH),
            e => {
                let sess = s.get_mut(&key).ok_or(ec::SHARE_SESSION_NOT_FOUND)?;
                if sess.next_epoch != e {
                    return Err(ec::INVALID_SHARE_SESSION_EPOCH);
                }
                sess.next_epoch = bump(e);
                sess.partitions.extend(add.iter().cloned());
                for f in forget {
                    sess.partitions.remove(f);
                }
                Ok(sess.partitions.iter().cloned().collect())
            }
        }
    })
}

/// A ShareAcknowledge's session part: epoch 0 is refused (acknowledging needs a session), -1
/// closes the session, others must be the next epoch. Returns the session's partitions (for -1,
/// those it had).
pub fn acknowledge(group: &str, member: &str, epoch: i32) -> Result<Vec<Tp>, i16> {
    SESSIONS.with(|s| {
        let mut s = s.borrow_mut();
        let key = (group.to_string(), member.to_string());
        match epoch {
            0 => Err(ec::INVALID_SHARE_SESSION_EPOCH),
            -1 => Ok(s
                .remove(&key)
                .map(|x| x.partitions.into_iter().collect())
                .unwrap_or_default()),
            e if e < -1 => Err(ec::INVALID_SHARE_SESSION_EPOCH),
            e => {
                let sess = s.get_mut(&key).ok_or(ec::SHARE_SESSION_NOT_FOUND)?;
                if sess.next_epoch != e {
                    return Err(ec::INVALID_SHARE_SESSION_EPOCH);
                }
                sess.next_epoch = bump(e);
                Ok(sess.partitions.iter().cloned().collect())
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_open_advance_and_close_a_session() {
        let t = |p| ("t".to_string(), p);
        assert_eq!(
            fetch("g", "m", 1, &[], &[], 10),
            Err(ec::SHARE_SESSION_NOT_FOUND)
        );
        assert_eq!(fetch("g", "m", 0, &[t(0)], &[], 10), Ok(vec![t(0)]));
        assert_eq!(
            fetch("g", "m", 2, &[], &[], 10),
            Err(ec::INVALID_SHARE_SESSION_EPOCH)
        );
        assert_eq!(fetch("g", "m", 1, &[t(1)], &[t(0)], 10), Ok(vec![t(1)]));
        assert_eq!(acknowledge("g", "m", 2), Ok(vec![t(1)]));
        assert_eq!(
            acknowledge("g", "m", 0),
            Err(ec::INVALID_SHARE_SESSION_EPOCH)
        );
        assert_eq!(fetch("g", "m", -1, &[], &[], 10), Ok(vec![t(1)]));
        assert_eq!(
            fetch("g", "m", 3, &[], &[], 10),
            Err(ec::SHARE_SESSION_NOT_FOUND)
        );
        assert_eq!(
            fetch("g", "x", 0, &[], &[], 0),
            Err(ec::SHARE_SESSION_LIMIT_REACHED)
        );
    }
}
