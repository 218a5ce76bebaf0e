//! `ringlet-powerfail MOUNTPOINT`: a FUSE file system, held in memory, that loses what was not
//! made durable when it is told the power went out, for the power-loss tests
//! (`tests/e2e/test_power_loss.py`, issue 26).
//!
//! Each file has the contents readers see and its contents as of its last `fsync`/`fdatasync`.
//! Writing `cut` to the control file `MOUNTPOINT/.powercut` puts every file back to its synced
//! contents (a file never synced is empty), as a power cut does to a disk whose cache the kernel
//! never flushed; `sync`/`syncfs` are not modelled (the broker never calls them). Files are opened
//! with `FOPEN_DIRECT_IO`, so the kernel keeps no page cache of them that could outlive a cut.
//!
//! Not modelled: directory entries are durable at once (a file created, renamed or removed stays
//! so after a cut even without an `fsync` of its directory), where ext4 may lose a directory
//! change that was not synced. So this catches data that is acknowledged before its `fdatasync`,
//! not a missing directory `fsync`.

use fuser::{
    FileAttr, FileType, Filesystem, MountOption, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
};
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::time::{Duration, SystemTime};

const ROOT: u64 = 1;
const CONTROL: u64 = 2;
const CONTROL_NAME: &str = ".powercut";
const TTL: Duration = Duration::from_secs(0);

enum Body {
    Dir(BTreeMap<OsString, u64>),
    File { data: Vec<u8>, synced: Vec<u8> },
}

struct Node {
    body: Body,
    perm: u16,
    mtime: SystemTime,
}

struct PowerFail {
    nodes: HashMap<u64, Node>,
    next: u64,
    cuts: u64,
}

impl PowerFail {
    fn new() -> PowerFail {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                body: Body::Dir(BTreeMap::new()),
                perm: 0o755,
                mtime: SystemTime::now(),
            },
        );
        PowerFail {
            nodes,
            next: 3,
            cuts: 0,
        }
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let (kind, size, perm, mtime) = if ino == CONTROL {
            (FileType::RegularFile, 0, 0o600, SystemTime::now())
        } else {
            let n = self.nodes.get(&ino)?;
            match &n.body {
                Body::Dir(_) => (FileType::Directory, 0, n.perm, n.mtime),
                Body::File { data, .. } => {
                    (FileType::RegularFile, data.len() as u64, n.perm, n.mtime)
                }
            }
        };
        Some(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime,
            kind,
            perm,
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn dir(&mut self, ino: u64) -> Option<&mut BTreeMap<OsString, u64>> {
        match &mut self.nodes.get_mut(&ino)?.body {
            Body::Dir(d) => Some(d),
            Body::File { .. } => None,
        }
    }

    fn child(&mut self, parent: u64, name: &OsStr) -> Option<u64> {
        if parent == ROOT && name == CONTROL_NAME {
            return Some(CONTROL);
        }
        self.dir(parent)?.get(name).copied()
    }

    /// Adds a node under `parent`; `None` when the parent is no directory or the name is taken.
    fn add(&mut self, parent: u64, name: &OsStr, body: Body, perm: u16) -> Result<u64, i32> {
        let ino = self.next;
        let d = self.dir(parent).ok_or(libc::ENOTDIR)?;
        if d.contains_key(name) {
            return Err(libc::EEXIST);
        }
        d.insert(name.to_owned(), ino);
        self.next += 1;
        self.nodes.insert(
            ino,
            Node {
                body,
                perm,
                mtime: SystemTime::now(),
            },
        );
        Ok(ino)
    }

    fn file(&mut self, ino: u64) -> Result<(&mut Vec<u8>, &mut Vec<u8>), i32> {
        let n = self.nodes.get_mut(&ino).ok_or(libc::ENOENT)?;
        n.mtime = SystemTime::now();
        match &mut n.body {
            Body::File { data, synced } => Ok((data, synced)),
            Body::Dir(_) => Err(libc::EISDIR),
        }
    }

    /// The power cut: every file back to what its last sync made durable.
    fn cut(&mut self) {
        let mut lost = 0usize;
        let mut files = 0usize;
        for n in self.nodes.values_mut() {
            if let Body::File { data, synced } = &mut n.body {
                if data != synced {
                    files += 1;
                    lost += data.len().abs_diff(synced.len()).max(1);
                    data.clone_from(synced);
                }
            }
        }
        self.cuts += 1;
        eprintln!(
            "ringlet-powerfail: power cut {}: {files} files lost unsynced writes (~{lost} bytes)",
            self.cuts
        );
    }

    /// Removes `name` from `parent` (and its node, unless it is a non-empty directory).
    fn remove(&mut self, parent: u64, name: &OsStr, want_dir: bool) -> Result<(), i32> {
        let ino = self.child(parent, name).ok_or(libc::ENOENT)?;
        let is_dir = matches!(self.nodes.get(&ino).map(|n| &n.body), Some(Body::Dir(_)));
        if is_dir != want_dir {
            return Err(if want_dir {
                libc::ENOTDIR
            } else {
                libc::EISDIR
            });
        }
        if matches!(self.nodes.get(&ino).map(|n| &n.body), Some(Body::Dir(d)) if !d.is_empty()) {
            return Err(libc::ENOTEMPTY);
        }
        self.dir(parent).ok_or(libc::ENOTDIR)?.remove(name);
        self.nodes.remove(&ino);
        Ok(())
    }
}

fn reply_entry(fs: &PowerFail, ino: u64, reply: ReplyEntry) {
    match fs.attr(ino) {
        Some(a) => reply.entry(&TTL, &a, 0),
        None => reply.error(libc::ENOENT),
    }
}

impl Filesystem for PowerFail {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        match self.child(parent, name) {
            Some(ino) => reply_entry(self, ino, reply),
            None => reply.error(libc::ENOENT),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.attr(ino) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(libc::ENOENT),
        }
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        if let Some(size) = size.filter(|_| ino != CONTROL) {
            match self.file(ino) {
                Ok((data, _)) => data.resize(size as usize, 0),
                Err(e) => return reply.error(e),
            }
        }
        if let (Some(mode), Some(n)) = (mode, self.nodes.get_mut(&ino)) {
            n.perm = (mode & 0o7777) as u16;
        }
        match self.attr(ino) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(libc::ENOENT),
        }
    }

    fn mkdir(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        match self.add(
            parent,
            name,
            Body::Dir(BTreeMap::new()),
            (mode & 0o7777) as u16,
        ) {
            Ok(ino) => reply_entry(self, ino, reply),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        match self.remove(parent, name, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        match self.remove(parent, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        let Some(ino) = self.child(parent, name) else {
            return reply.error(libc::ENOENT);
        };
        if let Some(old) = self.child(newparent, newname) {
            if flags & libc::RENAME_NOREPLACE != 0 {
                return reply.error(libc::EEXIST);
            }
            if old != ino {
                if let Err(e) = self.remove(
                    newparent,
                    newname,
                    matches!(self.nodes.get(&old).map(|n| &n.body), Some(Body::Dir(_))),
                ) {
                    return reply.error(e);
                }
            }
        }
        let Some(d) = self.dir(parent) else {
            return reply.error(libc::ENOTDIR);
        };
        d.remove(name);
        match self.dir(newparent) {
            Some(d) => {
                d.insert(newname.to_owned(), ino);
                reply.ok()
            }
            None => reply.error(libc::ENOTDIR),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        if ino != CONTROL && !self.nodes.contains_key(&ino) {
            return reply.error(libc::ENOENT);
        }
        reply.opened(0, fuser::consts::FOPEN_DIRECT_IO);
    }

    fn create(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let body = Body::File {
            data: Vec::new(),
            synced: Vec::new(),
        };
        match self.add(parent, name, body, (mode & 0o7777) as u16) {
            Ok(ino) => match self.attr(ino) {
                Some(a) => reply.created(&TTL, &a, 0, 0, fuser::consts::FOPEN_DIRECT_IO),
                None => reply.error(libc::EIO),
            },
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        if ino == CONTROL {
            return reply.data(&[]);
        }
        match self.file(ino) {
            Ok((data, _)) => {
                let start = (offset.max(0) as usize).min(data.len());
                let end = (start + size as usize).min(data.len());
                reply.data(&data[start..end])
            }
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        bytes: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        if ino == CONTROL {
            if bytes.starts_with(b"cut") {
                self.cut();
            }
            return reply.written(bytes.len() as u32);
        }
        match self.file(ino) {
            Ok((data, _)) => {
                let start = offset.max(0) as usize;
                if data.len() < start + bytes.len() {
                    data.resize(start + bytes.len(), 0);
                }
                data[start..start + bytes.len()].copy_from_slice(bytes);
                reply.written(bytes.len() as u32)
            }
            Err(e) => reply.error(e),
        }
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lo: u64, reply: ReplyEmpty) {
        reply.ok()
    }

    fn fsync(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _ds: bool, reply: ReplyEmpty) {
        if ino == CONTROL {
            return reply.ok();
        }
        match self.file(ino) {
            Ok((data, synced)) => {
                if data != synced {
                    synced.clone_from(data);
                }
                reply.ok()
            }
            // Directories: their entries are durable at once (see the module's notes).
            Err(libc::EISDIR) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match self.dir(ino) {
            Some(_) => reply.opened(0, 0),
            None => reply.error(libc::ENOTDIR),
        }
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let Some(d) = self.dir(ino) else {
            return reply.error(libc::ENOTDIR);
        };
        let mut entries: Vec<(u64, OsString)> = vec![(ino, ".".into()), (ROOT, "..".into())];
        entries.extend(d.iter().map(|(n, i)| (*i, n.clone())));
        for (i, (child, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            let kind = match self.nodes.get(&child).map(|n| &n.body) {
                Some(Body::Dir(_)) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            if reply.add(child, (i + 1) as i64, kind, &name) {
                break;
            }
        }
        reply.ok()
    }

    fn fsyncdir(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _ds: bool, reply: ReplyEmpty) {
        reply.ok()
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        let used: u64 = self
            .nodes
            .values()
            .map(|n| match &n.body {
                Body::File { data, .. } => data.len() as u64 / 4096 + 1,
                Body::Dir(_) => 1,
            })
            .sum();
        let total = 4 << 20; // 16 GiB of 4 KiB blocks
        reply.statfs(
            total,
            total - used,
            total - used,
            1 << 20,
            1 << 20,
            4096,
            255,
            4096,
        );
    }

    fn fallocate(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        length: i64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        match self.file(ino) {
            Ok((data, _)) => {
                let end = (offset + length).max(0) as usize;
                if mode & libc::FALLOC_FL_KEEP_SIZE == 0 && data.len() < end {
                    data.resize(end, 0);
                }
                reply.ok()
            }
            Err(e) => reply.error(e),
        }
    }
}

fn main() {
    let Some(mountpoint) = std::env::args_os().nth(1) else {
        eprintln!("usage: ringlet-powerfail MOUNTPOINT   (write `cut` to MOUNTPOINT/.powercut)");
        std::process::exit(2);
    };
    let options = [
        MountOption::FSName("ringlet-powerfail".into()),
        MountOption::AllowOther,
    ];
    if let Err(e) = fuser::mount2(PowerFail::new(), &mountpoint, &options) {
        eprintln!("ringlet-powerfail: cannot mount: {e}");
        std::process::exit(1);
    }
}
