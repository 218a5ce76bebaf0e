//! The shard's file operations outside the ring: creating, truncating, renaming and removing
//! files, small whole-file reads and writes (checkpoints, indexes), and file and directory syncs.
//! They are rare (a roll, a retention pass, a checkpoint) and short, so they run inline on the
//! shard; going through here lets the portable backend's fault injection ([`FaultConfig`]) reach
//! them as `write_error_ppm` and `fsync_error_ppm` reach the ring's segment writes and
//! `fdatasync`s: each call here fails with probability `metadata_error_ppm`.
//!
//! [`FaultConfig`]: super::FaultConfig

use super::portable::with_faults;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// An injected failure, when this thread's portable backend draws one.
fn injected() -> io::Result<()> {
    let errno = with_faults(|f| {
        let ppm = f.config().metadata_error_ppm;
        f.hit(ppm).then(|| f.errno())
    })
    .flatten();
    match errno {
        Some(e) => Err(io::Error::from_raw_os_error(e)),
        None => Ok(()),
    }
}

/// Opens (creating when `create`) a file for reading and writing.
pub fn open_rw(path: &Path, create: bool) -> io::Result<File> {
    if create && !path.exists() {
        injected()?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
}

/// Opens an existing file for `O_DIRECT` writes; `Ok(None)` where the file system refuses
/// direct I/O (`EINVAL`: tmpfs on older kernels, some FUSE and network file systems).
pub fn open_direct(path: &Path) -> io::Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    injected()?;
    match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens an existing file for `O_DIRECT` reads; `Ok(None)` where the file system refuses direct
/// I/O.
pub fn open_direct_read(path: &Path) -> io::Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    injected()?;
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates (or empties) a file for writing.
pub fn create(path: &Path) -> io::Result<File> {
    injected()?;
    File::create(path)
}

/// Writes `data` to `file` (a whole small file: an index, a checkpoint).
pub fn write_all(file: &mut File, data: &[u8]) -> io::Result<()> {
    injected()?;
    file.write_all(data)
}

/// `fdatasync` of a file.
pub fn sync_data(file: &File) -> io::Result<()> {
    injected()?;
    file.sync_data()
}

/// `fsync` of a file (data and metadata, e.g. after a truncation).
pub fn sync_all(file: &File) -> io::Result<()> {
    injected()?;
    file.sync_all()
}

/// `fsync` of a directory, so that a rename, create or remove in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    injected()?;
    File::open(dir)?.sync_all()
}

/// Truncates (or extends) `file` to `len` bytes.
pub fn set_len(file: &File, len: u64) -> io::Result<()> {
    injected()?;
    file.set_len(len)
}

/// Reserves `len` bytes of disk for `file` without changing its size (`fallocate` with
/// `FALLOC_FL_KEEP_SIZE`): the blocks are allocated (unwritten) so later appends find them in
/// few extents and never fail for space mid-segment; a truncation releases what lies past the end.
pub fn preallocate(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    injected()?;
    let len =
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: fallocate on a descriptor `file` keeps open; it touches no memory of ours.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Renames `from` to `to` (atomically replacing it).
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    injected()?;
    std::fs::rename(from, to)
}

/// Removes a file.
pub fn remove_file(path: &Path) -> io::Result<()> {
    injected()?;
    std::fs::remove_file(path)
}

/// Removes a directory and everything in it.
pub fn remove_dir_all(path: &Path) -> io::Result<()> {
    injected()?;
    std::fs::remove_dir_all(path)
}

/// Creates a directory and its parents.
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    if !path.exists() {
        injected()?;
    }
    std::fs::create_dir_all(path)
}

/// Reads a whole small file (an index, a checkpoint).
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path)
}
