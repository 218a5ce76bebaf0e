//! A response on its way to the socket: in-memory parts and, for fetches, file regions that
//! move from segment files to the socket by splice (zero-copy) or by a read then a send.

use bytes::Bytes;
use ringlet_engine::runtime::io;
use std::os::fd::AsRawFd;

/// Below this, a zero-copy send costs more (page pinning, a notification) than the copy it saves.
const SEND_ZC_MIN: usize = 64 * 1024;

/// One piece of a response.
#[derive(Debug)]
pub enum Part {
    Bytes(Bytes),
    /// Several buffers sent back to back as one field (a fetch served from the tail cache).
    Many(Vec<Bytes>),
    /// `len` bytes at `position` of a segment file (a duplicated descriptor, so the bytes stay
    /// readable even if retention deletes the segment meanwhile).
    File {
        file: std::fs::File,
        position: u64,
        len: usize,
    },
}

impl Part {
    pub fn len(&self) -> usize {
        match self {
            Part::Bytes(b) => b.len(),
            Part::Many(v) => v.iter().map(Bytes::len).sum(),
            Part::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes `parts` in order: runs of in-memory parts with one vectored send each, file parts by
/// splice through the connection's pipe.
/// With `send_zc`, large in-memory parts (fetched records on the copying path) go out with
/// zero-copy sends.
pub async fn write_parts(
    socket: i32,
    parts: Vec<Part>,
    pipe: &mut Option<io::SplicePipe>,
    send_zc: bool,
) -> std::io::Result<()> {
    let mut pending: Vec<Bytes> = Vec::with_capacity(parts.len());
    for part in parts {
        match part {
            Part::Bytes(b) if send_zc && b.len() >= SEND_ZC_MIN => {
                if !pending.is_empty() {
                    io::write_all(socket, std::mem::take(&mut pending), None).await?;
                }
                io::send_zc_all(socket, b).await?;
            }
            Part::Bytes(b) => pending.push(b),
            Part::Many(v) => {
                for b in v {
                    if send_zc && b.len() >= SEND_ZC_MIN {
                        if !pending.is_empty() {
                            io::write_all(socket, std::mem::take(&mut pending), None).await?;
                        }
                        io::send_zc_all(socket, b).await?;
                    } else {
                        pending.push(b);
                    }
                }
            }
            Part::File {
                file,
                position,
                len,
            } => {
                if !pending.is_empty() {
                    io::write_all(socket, std::mem::take(&mut pending), None).await?;
                }
                if pipe.is_none() {
                    *pipe = Some(io::SplicePipe::new(1 << 20)?);
                }
                let p = pipe.as_ref().expect("created above");
                p.file_to_socket(file.as_raw_fd(), position, len, socket)
                    .await?;
            }
        }
    }
    if !pending.is_empty() {
        io::write_all(socket, pending, None).await?;
    }
    Ok(())
}
