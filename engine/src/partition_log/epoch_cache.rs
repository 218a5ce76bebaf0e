//! The leader-epoch cache: the first offset of each leader epoch, kept in Kafka's
//! `leader-epoch-checkpoint` format, and the partition's own leader epoch.

use super::checkpoint::{write_durably, write_i64};
use super::{PartitionLog, LEADER_EPOCH_CHECKPOINT_FILE, LEADER_EPOCH_FILE};
use crate::error::LogError;
use crate::runtime::fs;
use std::path::Path;

impl PartitionLog {
    /// Records the leader epoch (for replication; persisted so it survives restarts).
    pub fn set_leader_epoch(&mut self, epoch: i32) -> Result<(), LogError> {
        self.leader_epoch = epoch;
        write_i64(&self.dir.join(LEADER_EPOCH_FILE), i64::from(epoch))
    }

    /// The latest leader epoch in the cache (-1 when empty).
    pub fn latest_epoch(&self) -> i32 {
        self.epochs.last().map_or(-1, |e| e.0)
    }

    /// Kafka's `endOffsetFor`: for `epoch`, the largest cached epoch at or below it and the
    /// first offset after it (the log end for the latest epoch); `(-1, -1)` when unknown.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        if epoch < 0 {
            return (-1, -1);
        }
        if self.latest_epoch() == epoch {
            return (epoch, self.written_offset);
        }
        let Some(&(_, higher_start)) = self.epochs.iter().find(|e| e.0 > epoch) else {
            return (-1, -1);
        };
        match self.epochs.iter().rev().find(|e| e.0 <= epoch) {
            Some(&(e, _)) => (e, higher_start),
            None => (epoch, higher_start),
        }
    }

    /// Starts leader epoch `epoch` at the log end (a broker becoming leader): produced batches
    /// are stamped with it from now on.
    pub fn begin_leader_epoch(&mut self, epoch: i32) -> Result<(), LogError> {
        if epoch != self.leader_epoch {
            self.set_leader_epoch(epoch)?;
        }
        self.assign_epoch(epoch, self.written_offset)
    }

    pub(super) fn assign_epoch(&mut self, epoch: i32, start: i64) -> Result<(), LogError> {
        if self.latest_epoch() >= epoch {
            return Ok(());
        }
        // A newer epoch starting at the same offset replaces an empty older one.
        while self.epochs.last().is_some_and(|e| e.1 >= start) {
            self.epochs.pop();
        }
        self.epochs.push((epoch, start));
        self.write_epochs()
    }

    pub(super) fn write_epochs(&self) -> Result<(), LogError> {
        let mut s = format!("0\n{}\n", self.epochs.len());
        for (e, o) in &self.epochs {
            s.push_str(&format!("{e} {o}\n"));
        }
        write_durably(&self.dir.join(LEADER_EPOCH_CHECKPOINT_FILE), s.as_bytes())
    }

    /// The leader-epoch cache, oldest first.
    pub fn epochs(&self) -> &[(i32, i64)] {
        &self.epochs
    }
}

pub(super) fn read_epochs(p: &Path) -> Vec<(i32, i64)> {
    let Some(s) = fs::read(p).ok().and_then(|b| String::from_utf8(b).ok()) else {
        return Vec::new();
    };
    s.lines()
        .skip(2)
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect()
}
