//! Direct-I/O group writes of a partition (`ringlet.log.direct.io`): block-aligned writes that
//! rewrite the partial block the previous write left, and the tail cache their buffers feed.
//!
//! `O_DIRECT` wants the buffer, the file offset and the length aligned to the device's block
//! (4 KiB here). Kafka's segment format packs batches back to back, so a group's bytes rarely
//! start or end on a block boundary: each write starts at the block holding the segment's end,
//! repeats that block's bytes already written (kept in memory, read back once after a restart
//! or a truncation), and ends with zeros up to the next boundary. The file's size is then a
//! whole number of blocks until the segment rolls or the log closes, when it is cut back to its
//! batches (and recovery cuts the zeros after a crash): on disk the format is Kafka's, byte for
//! byte. The buffer, once written, is immutable and goes to the tail cache as it is.

use crate::partition_log::{DirectTarget, PreparedAppend};
use crate::runtime::io;
use crate::tail_cache::{CachedRead, Chunk, TailCache};
use bytes::Bytes;
use std::cell::RefCell;
use std::rc::Rc;

/// The partial block at the end of the active segment: file bytes
/// `[block_pos, block_pos + bytes.len())`, which the next direct write rewrites in front of its
/// own bytes.
struct DirectTail {
    segment_base: i64,
    block_pos: u64,
    bytes: Vec<u8>,
}

/// A partition's direct-write state.
#[derive(Default)]
pub(crate) struct DirectWriter {
    tail: RefCell<Option<DirectTail>>,
    cache: Rc<RefCell<TailCache>>,
}

impl DirectWriter {
    /// Forgets the partial block and the cache (the log's end moved back, or a write failed).
    pub(crate) fn forget(&self) {
        self.forget_block();
        self.cache.borrow_mut().clear();
    }

    /// Forgets the cached batches only (the cleaner rewrote segments they came from).
    pub(crate) fn clear_cache(&self) {
        self.cache.borrow_mut().clear();
    }

    /// Forgets the partial block only (a page-cache write made it stale).
    pub(crate) fn forget_block(&self) {
        self.tail.borrow_mut().take();
    }

    pub(crate) fn cached_bytes(&self) -> usize {
        self.cache.borrow().len_bytes()
    }

    /// A read served from the tail cache, if it holds the batch at `offset`; see
    /// [`TailCache::read`].
    pub(crate) fn read(
        &self,
        seg_base: i64,
        offset: i64,
        max_bytes: usize,
        end_position: u64,
    ) -> Option<CachedRead> {
        self.cache
            .borrow()
            .read(seg_base, offset, max_bytes, end_position)
    }

    /// Writes a group with `O_DIRECT`: one aligned buffer holding the partial block the previous
    /// write left at the segment's end (read back from the file after a restart or a
    /// truncation), the group's bytes, then zeros to the next block boundary, written at the
    /// block where the segment's end lies. Returns the buffer, for the tail cache.
    pub(crate) async fn write(
        &self,
        t: &DirectTarget,
        bufs: Vec<Bytes>,
        total: usize,
    ) -> std::io::Result<Bytes> {
        use std::os::fd::AsRawFd;
        const A: u64 = io::DIRECT_ALIGN as u64;
        if total == 0 {
            return Ok(Bytes::new());
        }
        let block = t.position / A * A;
        let prefix = (t.position - block) as usize;
        let known = self.tail.borrow().as_ref().is_some_and(|d| {
            d.segment_base == t.segment_base && d.block_pos == block && d.bytes.len() == prefix
        });
        if !known {
            let bytes = if prefix == 0 {
                Vec::new()
            } else {
                io::read_at(t.file.as_raw_fd(), block, prefix).await?
            };
            if bytes.len() != prefix {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the segment is shorter than its last block",
                ));
            }
            *self.tail.borrow_mut() = Some(DirectTail {
                segment_base: t.segment_base,
                block_pos: block,
                bytes,
            });
        }
        let end = t.position + total as u64;
        let padded = end.div_ceil(A) * A - block;
        let buf = {
            let tail = self.tail.borrow();
            let head = &tail.as_ref().expect("set above").bytes;
            io::aligned_buffer(
                padded as usize,
                std::iter::once(&head[..]).chain(bufs.iter().map(|b| &b[..])),
            )
        };
        io::write_direct(t.direct.as_raw_fd(), buf.clone(), block).await?;
        let last = end / A * A;
        *self.tail.borrow_mut() = Some(DirectTail {
            segment_base: t.segment_base,
            block_pos: last,
            bytes: buf[(last - block) as usize..(end - block) as usize].to_vec(),
        });
        Ok(buf)
    }

    /// Keeps a direct write's buffer in the tail cache, with where each of its batches starts.
    pub(crate) fn cache_group(
        &self,
        t: &DirectTarget,
        group: &[PreparedAppend],
        buf: Bytes,
        total: usize,
    ) {
        let mut batches = Vec::with_capacity(group.iter().map(|p| p.batches.len()).sum());
        let mut pos = t.position;
        let mut first_offset = None;
        for meta in group.iter().flat_map(|p| p.batches.iter()) {
            first_offset.get_or_insert(meta.base_offset);
            batches.push((meta.last_offset, pos));
            pos += u64::from(meta.size);
        }
        let Some(first_offset) = first_offset else {
            return;
        };
        debug_assert_eq!(pos, t.position + total as u64);
        const A: u64 = io::DIRECT_ALIGN as u64;
        TailCache::insert(
            &self.cache,
            Chunk {
                seg_base: t.segment_base,
                buf_pos: t.position / A * A,
                buf,
                start: t.position,
                end: pos,
                batches,
                first_offset,
            },
        );
    }
}
