//! The one way a log writes its small state files (recovery point, leader epoch, leader-epoch
//! cache, high watermark): write a temporary file, fsync it, rename it over the old one, fsync
//! the directory. A crash leaves the old content or the new one, never a torn or empty file, and
//! once this returns the new content survives power loss (Kafka's `CheckpointFile` does the same).

use crate::error::LogError;
use crate::runtime::fs;
use std::path::Path;

/// Replaces `path`'s content with `bytes` durably.
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::create(&tmp).map_err(|e| LogError::io(&tmp, e))?;
    fs::write_all(&mut f, bytes)
        .and_then(|()| fs::sync_all(&f))
        .map_err(|e| LogError::io(&tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| LogError::io(path, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::sync_dir(dir).map_err(|e| LogError::io(dir, e))
}

/// Writes one integer and a newline.
pub fn write_i64(path: &Path, v: i64) -> Result<(), LogError> {
    write_durably(path, format!("{v}\n").as_bytes())
}

/// Reads a file written by [`write_i64`]; `None` when it is missing or unreadable.
pub fn read_i64(path: &Path) -> Option<i64> {
    String::from_utf8(fs::read(path).ok()?)
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_value_and_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("ringlet-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("recovery-point");
        assert_eq!(read_i64(&p), None);
        write_i64(&p, 7).unwrap();
        write_i64(&p, 42).unwrap();
        assert_eq!(read_i64(&p), Some(42));
        assert!(!p.with_extension("tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
