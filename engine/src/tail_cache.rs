//! The shard-local tail cache: the buffers direct-I/O group writes just wrote, kept to serve
//! fetches of recent data from memory (one send per response, no read from the device).
//!
//! With `O_DIRECT` the page cache holds none of the log's tail, so without this cache every
//! consumer reading at the tail would read back from the device what was written a moment ago.
//! Each group write leaves one [`Chunk`]: the aligned buffer the kernel wrote from, the file range
//! the group's batches occupy in it, and where each batch starts, so a fetch is positioned without
//! reading a single batch header. A fetch that starts in the cache takes consecutive chunks of
//! the same segment until its byte budget is spent.
//!
//! Memory is bounded per shard (`ringlet.log.tail.cache.bytes`): every chunk of every partition on
//! the shard is counted against one budget, and the oldest chunks go first (first in, first out
//! across partitions: the tail is what consumers read, and the oldest chunk is the least likely to
//! be read again). A read that misses falls back to the segment file.

use bytes::Bytes;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

/// One group write's buffer and what it holds.
pub(crate) struct Chunk {
    /// Base offset of the segment written.
    pub seg_base: i64,
    /// File position of `buf[0]` (block aligned: the buffer starts with the block the previous
    /// group left partial).
    pub buf_pos: u64,
    pub buf: Bytes,
    /// File range of the group's own batches: `[start, end)`.
    pub start: u64,
    pub end: u64,
    /// Each batch's last offset and file position, ascending.
    pub batches: Vec<(i64, u64)>,
    /// First offset of the first batch.
    pub first_offset: i64,
}

/// A partition's cached chunks, oldest first.
#[derive(Default)]
pub(crate) struct TailCache {
    chunks: VecDeque<(u64, Chunk)>,
    next_seq: u64,
    bytes: usize,
}

/// What a cache hit returns: the pieces of the response, in order, and their total length.
pub(crate) struct CachedRead {
    pub parts: Vec<Bytes>,
    pub len: usize,
}

/// Length of the shard's eviction queue at which entries of dropped chunks are swept out.
const ORDER_COMPACT_AT: usize = 1 << 16;

struct Budget {
    limit: usize,
    used: usize,
    /// Every chunk cached on the shard, oldest first: `(its partition's cache, its sequence)`.
    /// Entries of chunks already dropped are skipped when they reach the front.
    order: VecDeque<(Weak<RefCell<TailCache>>, u64)>,
}

thread_local! {
    static BUDGET: RefCell<Budget> = const {
        RefCell::new(Budget { limit: 0, used: 0, order: VecDeque::new() })
    };
}

/// Sets this shard's cache budget in bytes (0 disables the cache).
pub(crate) fn set_shard_budget(bytes: usize) {
    BUDGET.with(|b| b.borrow_mut().limit = bytes);
}

/// Bytes cached on this shard, for metrics and tests.
pub fn shard_cached_bytes() -> usize {
    BUDGET.with(|b| b.borrow().used)
}

fn release(bytes: usize) {
    let _ = BUDGET.try_with(|b| {
        let mut b = b.borrow_mut();
        b.used = b.used.saturating_sub(bytes);
    });
}

impl TailCache {
    /// Caches `chunk` (when it fits the shard's budget), evicting the shard's oldest chunks.
    pub(crate) fn insert(cache: &Rc<RefCell<TailCache>>, chunk: Chunk) {
        let len = chunk.buf.len();
        let limit = BUDGET.with(|b| b.borrow().limit);
        {
            let mut c = cache.borrow_mut();
            // Chunks at or past the new one's start were truncated away (the log's end moved
            // back without the cache being told): they go.
            while let Some((_, last)) = c.chunks.back() {
                if (last.seg_base, last.end) <= (chunk.seg_base, chunk.start) {
                    break;
                }
                let (_, stale) = c.chunks.pop_back().expect("back exists");
                c.bytes -= stale.buf.len();
                release(stale.buf.len());
            }
        }
        // A chunk over a quarter of the budget would flush everyone else's for little gain.
        if len == 0 || len > limit / 4 {
            return;
        }
        let seq = {
            let mut c = cache.borrow_mut();
            let seq = c.next_seq;
            c.next_seq += 1;
            c.bytes += len;
            c.chunks.push_back((seq, chunk));
            seq
        };
        BUDGET.with(|b| {
            let mut b = b.borrow_mut();
            b.used += len;
            b.order.push_back((Rc::downgrade(cache), seq));
            if b.order.len() > ORDER_COMPACT_AT {
                // Entries of chunks dropped otherwise than by the budget (truncations, failed
                // writes, deleted partitions) go, so the queue stays bounded by the live chunks.
                b.order.retain(|(w, seq)| {
                    w.upgrade().is_some_and(|c| {
                        c.try_borrow()
                            .map_or(true, |c| c.chunks.iter().any(|(s, _)| s == seq))
                    })
                });
            }
        });
        loop {
            let victim = BUDGET.with(|b| {
                let mut b = b.borrow_mut();
                if b.used <= b.limit {
                    return None;
                }
                b.order.pop_front()
            });
            let Some((weak, seq)) = victim else { break };
            if let Some(c) = weak.upgrade() {
                c.borrow_mut().evict_through(seq);
            }
        }
    }

    fn evict_through(&mut self, seq: u64) {
        while let Some((s, _)) = self.chunks.front() {
            if *s > seq {
                break;
            }
            let (_, c) = self.chunks.pop_front().expect("front exists");
            self.bytes -= c.buf.len();
            release(c.buf.len());
        }
    }

    /// Drops every chunk (truncation, a failed write, deletion).
    pub(crate) fn clear(&mut self) {
        release(self.bytes);
        self.bytes = 0;
        self.chunks.clear();
    }

    pub(crate) fn len_bytes(&self) -> usize {
        self.bytes
    }

    /// The bytes of segment `seg_base` from the batch holding `offset`, at most `max_bytes` but
    /// always its whole first batch (KIP-74), never past file position `end_position` (the high
    /// watermark's). `None` when the batch is not cached.
    pub(crate) fn read(
        &self,
        seg_base: i64,
        offset: i64,
        max_bytes: usize,
        end_position: u64,
    ) -> Option<CachedRead> {
        let i = self
            .chunks
            .partition_point(|(_, c)| (c.seg_base, c.first_offset) <= (seg_base, offset));
        let (_, first) = self.chunks.get(i.checked_sub(1)?)?;
        if first.seg_base != seg_base {
            return None;
        }
        let b = first.batches.partition_point(|&(last, _)| last < offset);
        let &(_, pos) = first.batches.get(b)?;
        if pos >= end_position {
            return None;
        }
        let first_end = first.batches.get(b + 1).map_or(first.end, |&(_, p)| p);
        let want = (end_position - pos).min(max_bytes.max((first_end - pos) as usize) as u64);
        let stop = pos + want;
        let mut parts = Vec::with_capacity(2);
        let mut at = pos;
        for (_, c) in self.chunks.range(i - 1..) {
            if c.seg_base != seg_base || c.start > at || at >= stop {
                break;
            }
            let to = c.end.min(stop);
            parts.push(
                c.buf
                    .slice((at - c.buf_pos) as usize..(to - c.buf_pos) as usize),
            );
            at = to;
        }
        Some(CachedRead {
            parts,
            len: (at - pos) as usize,
        })
    }
}

impl Drop for TailCache {
    fn drop(&mut self) {
        release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(seg_base: i64, start: u64, sizes: &[u64], first_offset: i64) -> Chunk {
        let buf_pos = start / 4096 * 4096;
        let end = start + sizes.iter().sum::<u64>();
        let buf: Vec<u8> = (buf_pos..end).map(|p| (p % 251) as u8).collect();
        let mut batches = Vec::new();
        let (mut pos, mut off) = (start, first_offset);
        for &s in sizes {
            batches.push((off + 9, pos));
            off += 10;
            pos += s;
        }
        Chunk {
            seg_base,
            buf_pos,
            buf: Bytes::from(buf),
            start,
            end,
            batches,
            first_offset,
        }
    }

    fn bytes_at(from: u64, to: u64) -> Vec<u8> {
        (from..to).map(|p| (p % 251) as u8).collect()
    }

    #[test]
    fn reads_whole_first_batch_and_spans_chunks_up_to_the_bound() {
        set_shard_budget(1 << 20);
        let cache = Rc::new(RefCell::new(TailCache::default()));
        TailCache::insert(&cache, chunk(0, 0, &[100, 200], 0));
        TailCache::insert(&cache, chunk(0, 300, &[5000], 20));
        let c = cache.borrow();
        // Offset 15 is in the second batch (10..=19) at position 100.
        let r = c.read(0, 15, 1, 10_000).unwrap();
        assert_eq!(r.len, 200, "the whole first batch despite max_bytes");
        let r = c.read(0, 15, 1000, 10_000).unwrap();
        assert_eq!(r.len, 1000);
        let joined: Vec<u8> = r.parts.iter().flat_map(|p| p.to_vec()).collect();
        assert_eq!(joined, bytes_at(100, 1100));
        // The high watermark's position bounds the read.
        assert_eq!(c.read(0, 15, 10_000, 2000).unwrap().len, 1900);
        assert!(c.read(0, 25, 10_000, 300).is_none(), "at the bound");
        assert!(c.read(0, 30, 10_000, 10_000).is_none(), "past the cache");
        assert!(c.read(1, 15, 10_000, 10_000).is_none(), "another segment");
    }

    #[test]
    fn the_shard_budget_evicts_oldest_first_across_partitions() {
        set_shard_budget(40_000);
        let a = Rc::new(RefCell::new(TailCache::default()));
        let b = Rc::new(RefCell::new(TailCache::default()));
        TailCache::insert(&a, chunk(0, 0, &[9000], 0));
        TailCache::insert(&b, chunk(0, 0, &[9000], 0));
        // Block-aligned starts: every buffer is 9000 bytes.
        TailCache::insert(&a, chunk(0, 12288, &[9000], 10));
        assert_eq!(shard_cached_bytes(), 27_000);
        assert_eq!(
            shard_cached_bytes(),
            a.borrow().len_bytes() + b.borrow().len_bytes()
        );
        TailCache::insert(&b, chunk(0, 12288, &[9000], 10));
        TailCache::insert(&b, chunk(0, 24576, &[9000], 20));
        assert!(shard_cached_bytes() <= 40_000);
        assert!(
            a.borrow().read(0, 0, 1, u64::MAX).is_none(),
            "a's oldest went first"
        );
        assert!(b.borrow().read(0, 0, 1, u64::MAX).is_some());
        drop(a);
        b.borrow_mut().clear();
        assert_eq!(shard_cached_bytes(), 0);
    }
}
