//! One segment of a partition log: a `.log` file of record batches plus its two sparse indexes.
//!
//! Files are named by the segment's base offset, zero-padded to 20 digits, as Kafka names them:
//! `00000000000000000000.log`, `.index`, `.timeindex`. The segment tracks three sizes in order:
//! `flushed_size <= size` where `size` is what has been written (visible to readers) and
//! `flushed_size` what an fdatasync has covered.

use crate::error::LogError;
use crate::offset_index::OffsetIndex;
use crate::runtime::fs;
use crate::time_index::TimeIndex;
use ringlet_format::batch;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// `<20-digit base offset>.<ext>` inside `dir`.
pub fn file_path(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{ext}"))
}

/// What one written batch contributes to a segment.
#[derive(Clone, Copy, Debug)]
pub struct BatchMeta {
    pub base_offset: i64,
    pub last_offset: i64,
    pub size: u32,
    pub max_timestamp: i64,
}

pub struct Segment {
    pub base_offset: i64,
    pub file: Rc<File>,
    /// The `.log` opened a second time with `O_DIRECT`, for the group writes of the active
    /// segment in direct mode (`None` otherwise). Reads keep using `file`.
    pub direct: Option<Rc<File>>,
    pub log_path: PathBuf,
    /// Bytes written to the `.log` (readable).
    pub size: u64,
    /// Bytes an fdatasync has covered.
    pub flushed_size: u64,
    /// Offset after the last batch written.
    pub next_offset: i64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    bytes_since_index_entry: usize,
    /// Largest timestamp of any batch in the segment (-1 when empty).
    pub max_timestamp: i64,
    /// Wall-clock creation time, for `log.roll.ms`.
    pub created_ms: i64,
}

impl Segment {
    /// Creates an empty segment (truncating any leftover file of the same name), reserving
    /// `preallocate` bytes of disk for it when that is not 0 (`log.preallocate`). A file system
    /// that cannot reserve space only costs the reservation: the segment is created anyway.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        now_ms: i64,
        preallocate: u64,
    ) -> Result<Segment, LogError> {
        let log_path = file_path(dir, base_offset, "log");
        let file = fs::open_rw(&log_path, true)
            .and_then(|f| fs::set_len(&f, 0).map(|()| f))
            .map_err(|e| LogError::io(&log_path, e))?;
        if preallocate > 0 {
            if let Err(e) = fs::preallocate(&file, preallocate) {
                tracing::warn!(path = %log_path.display(), bytes = preallocate, error = %e, "cannot preallocate the segment; it grows as written");
            }
        }
        for ext in ["index", "timeindex"] {
            let p = file_path(dir, base_offset, ext);
            if p.exists() {
                fs::remove_file(&p).map_err(|e| LogError::io(&p, e))?;
            }
        }
        Ok(Segment::from_parts(
            base_offset,
            Rc::new(file),
            log_path,
            0,
            now_ms,
        ))
    }

    /// Creates an empty segment file at `log_path` (a name other than the segment's own: the
    /// cleaner's `.log.cleaned`), truncating any leftover.
    pub fn create_at(
        log_path: PathBuf,
        base_offset: i64,
        now_ms: i64,
    ) -> Result<Segment, LogError> {
        let file = fs::open_rw(&log_path, true)
            .and_then(|f| fs::set_len(&f, 0).map(|()| f))
            .map_err(|e| LogError::io(&log_path, e))?;
        Ok(Segment::from_parts(
            base_offset,
            Rc::new(file),
            log_path,
            0,
            now_ms,
        ))
    }

    fn from_parts(
        base_offset: i64,
        file: Rc<File>,
        log_path: PathBuf,
        size: u64,
        now_ms: i64,
    ) -> Segment {
        Segment {
            base_offset,
            file,
            direct: None,
            log_path,
            size,
            flushed_size: size,
            next_offset: base_offset,
            offset_index: OffsetIndex::new(base_offset),
            time_index: TimeIndex::new(base_offset),
            bytes_since_index_entry: 0,
            max_timestamp: -1,
            created_ms: now_ms,
        }
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Accounts a batch written at `position`; adds index entries every `index_interval` bytes.
    pub fn on_batch_written(&mut self, meta: &BatchMeta, position: u64, index_interval: usize) {
        assert_eq!(position, self.size, "batches are written back to back");
        assert!(meta.base_offset >= self.next_offset, "offsets increase");
        if self.size == 0 || self.bytes_since_index_entry >= index_interval {
            // The first batch is found at position 0 without an entry.
            if self.size > 0 {
                self.offset_index.append(meta.base_offset, position as u32);
                self.time_index
                    .maybe_append(self.max_timestamp, meta.base_offset);
            }
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += meta.size as usize;
        self.size += u64::from(meta.size);
        self.next_offset = meta.last_offset + 1;
        self.max_timestamp = self.max_timestamp.max(meta.max_timestamp);
    }

    /// Writes both index files (used at roll and clean close; rebuilt after an unclean stop).
    pub fn write_indexes(&self, dir: &Path) -> Result<(), LogError> {
        for (ext, bytes) in [
            ("index", self.offset_index.to_bytes()),
            ("timeindex", self.time_index.to_bytes()),
        ] {
            let p = file_path(dir, self.base_offset, ext);
            let mut f = fs::create(&p).map_err(|e| LogError::io(&p, e))?;
            fs::write_all(&mut f, &bytes).map_err(|e| LogError::io(&p, e))?;
            fs::sync_data(&f).map_err(|e| LogError::io(&p, e))?;
        }
        Ok(())
    }

    /// Opens an existing segment. When `recover` is set every batch is validated and the file is
    /// truncated at the first invalid or torn one (returning `true` in the second field); otherwise
    /// the indexes are loaded (or rebuilt if missing or invalid) and only the tail after the last
    /// index entry is scanned to find the next offset.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        recover: bool,
        index_interval: usize,
        leader_epoch: i32,
        now_ms: i64,
        allow_gaps: bool,
    ) -> Result<(Segment, bool), LogError> {
        let log_path = file_path(dir, base_offset, "log");
        let file = fs::open_rw(&log_path, false).map_err(|e| LogError::io(&log_path, e))?;
        let file_size = file
            .metadata()
            .map_err(|e| LogError::io(&log_path, e))?
            .len();
        let created_ms = file
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(now_ms, |d| d.as_millis() as i64);
        let file = Rc::new(file);
        let mut seg =
            Segment::from_parts(base_offset, file.clone(), log_path.clone(), 0, created_ms);
        let mut start = 0u64;
        if !recover {
            if let Some(idx) = load_indexes(dir, base_offset, file_size) {
                seg.offset_index = idx.0;
                seg.time_index = idx.1;
                if let Some((off, pos)) = seg.offset_index.last() {
                    start = u64::from(pos);
                    seg.size = start;
                    seg.next_offset = off;
                    seg.max_timestamp = seg.time_index_max();
                    seg.bytes_since_index_entry = 0;
                }
            }
        }
        let (end, truncated) = scan(
            &file,
            &log_path,
            &mut seg,
            start,
            file_size,
            &ScanRules {
                validate: recover,
                index_interval,
                leader_epoch,
                allow_gaps,
            },
        )?;
        let padding = truncated && zero_tail(&file, end, file_size);
        if padding {
            // The block padding of a direct write (or a preallocated tail) left by a crash or a
            // failed close: nothing is lost, the batches end where the zeros start, and the
            // segments after this one stay.
            tracing::debug!(path = %log_path.display(), position = end, file_size, "cutting the zero padding after the last batch");
        } else if truncated {
            tracing::warn!(path = %log_path.display(), position = end, file_size, "truncating segment at the first invalid batch");
        }
        if truncated {
            fs::set_len(&file, end).map_err(|e| LogError::io(&log_path, e))?;
            fs::sync_all(&file).map_err(|e| LogError::io(&log_path, e))?;
        }
        let truncated = truncated && !padding;
        seg.size = end;
        seg.flushed_size = end;
        Ok((seg, truncated))
    }

    fn time_index_max(&self) -> i64 {
        let b = self.time_index.to_bytes();
        if b.len() >= 12 {
            i64::from_be_bytes(b[b.len() - 12..b.len() - 4].try_into().expect("8 bytes"))
        } else {
            -1
        }
    }

    /// Ends writes to this segment (it stops being the active one, or the log closes): cuts the
    /// zero padding of the last direct write so the file is exactly its batches, as Kafka's is,
    /// and drops the `O_DIRECT` descriptor; with `preallocated`, also releases the disk reserved
    /// past the last batch (a truncation to the same size does that on Linux).
    pub fn end_active(&mut self, preallocated: bool) -> Result<(), LogError> {
        if self.direct.take().is_some() || preallocated {
            fs::set_len(&self.file, self.size).map_err(|e| LogError::io(&self.log_path, e))?;
        }
        Ok(())
    }

    /// Truncates the segment so that its last batch ends before `offset`; `position` is the byte
    /// position of the batch starting at `offset`.
    pub fn truncate_to(&mut self, offset: i64, position: u64) -> Result<(), LogError> {
        fs::set_len(&self.file, position).map_err(|e| LogError::io(&self.log_path, e))?;
        self.size = position;
        self.flushed_size = self.flushed_size.min(position);
        self.next_offset = offset.max(self.base_offset);
        self.offset_index.truncate_to(offset);
        self.time_index.truncate_to(offset);
        self.bytes_since_index_entry = 0;
        Ok(())
    }
}

/// Whether `[from, to)` of `file` is all zeros and shorter than one direct-I/O block.
fn zero_tail(file: &File, from: u64, to: u64) -> bool {
    let len = to.saturating_sub(from);
    if len == 0 || len > crate::runtime::io::DIRECT_ALIGN as u64 {
        return false;
    }
    let mut buf = vec![0u8; len as usize];
    std::os::unix::fs::FileExt::read_exact_at(file, &mut buf, from).is_ok()
        && buf.iter().all(|&b| b == 0)
}

fn load_indexes(dir: &Path, base_offset: i64, log_size: u64) -> Option<(OffsetIndex, TimeIndex)> {
    let ip = file_path(dir, base_offset, "index");
    let tp = file_path(dir, base_offset, "timeindex");
    let ib = fs::read(&ip).ok()?;
    let tb = fs::read(&tp).ok()?;
    match (
        OffsetIndex::from_bytes(base_offset, &ib, log_size),
        TimeIndex::from_bytes(base_offset, &tb),
    ) {
        (Ok(i), Ok(t)) => Some((i, t)),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(path = %ip.display(), reason = %e, "index is invalid, rebuilding it");
            None
        }
    }
}

/// How [`scan`] treats the batches it reads.
struct ScanRules {
    /// Validate every batch (recovery) rather than trusting the file (clean start).
    validate: bool,
    index_interval: usize,
    /// Largest partitionLeaderEpoch a valid batch may carry.
    leader_epoch: i32,
    /// Offsets may jump between batches (a compacted log; Kafka's recovery allows gaps anywhere);
    /// otherwise a batch must start where the previous one ended, which catches garbage in the
    /// baseOffset field (outside the CRC) of a torn write.
    allow_gaps: bool,
}

/// Scans batches from `start` to `file_size`, adding each to `seg`. With `validate`, a batch that
/// fails validation (or is torn) ends the scan and the returned flag is true. Returns the end
/// position of the last good batch.
fn scan(
    mut file: &File,
    path: &Path,
    seg: &mut Segment,
    start: u64,
    file_size: u64,
    rules: &ScanRules,
) -> Result<(u64, bool), LogError> {
    let ScanRules {
        validate,
        index_interval,
        leader_epoch,
        ..
    } = *rules;
    file.seek(SeekFrom::Start(start))
        .map_err(|e| LogError::io(path, e))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut pos = start;
    let mut buf = Vec::new();
    while pos < file_size {
        let mut head = [0u8; batch::LOG_OVERHEAD];
        if file_size - pos < batch::HEADER_SIZE as u64 {
            return Ok((pos, true));
        }
        reader
            .read_exact(&mut head)
            .map_err(|e| LogError::io(path, e))?;
        let len = i32::from_be_bytes(head[8..12].try_into().expect("4 bytes"));
        let size = i64::from(len) + batch::LOG_OVERHEAD as i64;
        if len < (batch::HEADER_SIZE - batch::LOG_OVERHEAD) as i32 || pos + size as u64 > file_size
        {
            return Ok((pos, true));
        }
        buf.clear();
        buf.extend_from_slice(&head);
        buf.resize(size as usize, 0);
        reader
            .read_exact(&mut buf[batch::LOG_OVERHEAD..])
            .map_err(|e| LogError::io(path, e))?;
        let header = if validate {
            match batch::validate_stored(&buf) {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(path = %path.display(), position = pos, error = %e, "invalid batch during recovery");
                    return Ok((pos, true));
                }
            }
        } else {
            batch::BatchHeader::parse(&buf).map_err(|e| LogError::Corrupt {
                path: path.to_path_buf(),
                position: pos,
                reason: e.to_string(),
            })?
        };
        let offset_ok = if rules.allow_gaps {
            header.base_offset >= seg.next_offset
        } else {
            header.base_offset == seg.next_offset
        };
        if validate
            && (!offset_ok
                || header.partition_leader_epoch < -1
                || header.partition_leader_epoch > leader_epoch)
        {
            // The bytes outside the CRC (baseOffset, partitionLeaderEpoch) must be what the broker
            // wrote: contiguous offsets and a known epoch.
            tracing::warn!(path = %path.display(), position = pos, base_offset = header.base_offset, expected = seg.next_offset, epoch = header.partition_leader_epoch, "batch header outside the CRC is inconsistent during recovery");
            return Ok((pos, true));
        }
        if header.base_offset < seg.next_offset {
            return Err(LogError::Corrupt {
                path: path.to_path_buf(),
                position: pos,
                reason: format!("offset {} after {}", header.base_offset, seg.next_offset),
            });
        }
        let meta = BatchMeta {
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
            size: size as u32,
            max_timestamp: header.max_timestamp,
        };
        // Entries loaded from the index file end at `start`; only add new ones past it.
        seg.on_batch_written(&meta, pos, index_interval);
        pos += size as u64;
    }
    Ok((pos, false))
}

impl Segment {
    /// The batch headers from file position `from` to the segment's end, one read per batch
    /// (records are skipped): every header scan of a written segment goes through this.
    pub fn walk(&self, from: u64) -> BatchWalk<'_> {
        BatchWalk {
            seg: self,
            pos: from,
            failed: false,
        }
    }
}

/// Iterator of [`Segment::walk`]: `(file position, header)` per batch; stops after an error.
pub struct BatchWalk<'a> {
    seg: &'a Segment,
    pos: u64,
    failed: bool,
}

impl Iterator for BatchWalk<'_> {
    type Item = Result<(u64, batch::BatchHeader), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos + batch::HEADER_SIZE as u64 > self.seg.size {
            return None;
        }
        let mut head = [0u8; batch::HEADER_SIZE];
        let at = self.pos;
        let read = std::os::unix::fs::FileExt::read_exact_at(&*self.seg.file, &mut head, at)
            .map_err(|e| LogError::io(&self.seg.log_path, e))
            .and_then(|()| {
                batch::BatchHeader::parse(&head).map_err(|e| LogError::Corrupt {
                    path: self.seg.log_path.clone(),
                    position: at,
                    reason: e.to_string(),
                })
            });
        match read {
            Ok(h) => {
                self.pos = at + h.size() as u64;
                Some(Ok((at, h)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
