//! Secret files on disk: the 0700 secrets directory, atomic 0400 files, and the checks that refuse unsafe paths.
//!
//! Every file operation goes through a directory file descriptor opened with
//! `O_NOFOLLOW`, so a symlink swapped in for the directory or a file is refused
//! rather than followed. A write creates a temp file with `O_EXCL` in the same
//! directory, sets its final mode and owner, writes, fsyncs, renames over the
//! target and fsyncs the directory: a reader sees the old value or the new one,
//! never a partial file, and never a file with the wrong mode.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, Mode};
use nix::unistd::{fchown, Gid, Uid};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::FingerprintKey;

/// Prefix of temp files; `load` removes leftovers with it from a crashed run.
pub const TEMP_PREFIX: &str = ".compose-secrets.tmp.";

/// Largest secret file we read back: Key Vault values stop at 25 KB.
pub(crate) const MAX_READ_BYTES: u64 = 1024 * 1024;

/// What a temp-file cleanup did.
#[derive(Debug, Default)]
pub struct TempCleanup {
    pub removed: usize,
    /// Entries named like temp files that are not files (left alone).
    pub skipped: Vec<PathBuf>,
}

/// What is on disk for one secret file.
pub struct FileState {
    pub contents: Zeroizing<Vec<u8>>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The last write in Unix nanoseconds: container start times have nanoseconds too.
    pub mtime_ns: i128,
    /// Which file this was (device, inode): a prune unlinks the name only while it still is.
    pub id: (u64, u64),
}

/// Ownership to give a file; `None` fields keep the writer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Owner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// An opened, checked secrets directory.
pub struct SecretDir {
    path: PathBuf,
    fd: OwnedFd,
}

impl SecretDir {
    /// Open one of compose-secrets' own directories (the runtime directory's `secrets`, or
    /// `--secrets-dir`), creating it and missing parents with mode 0700 when `create` is set.
    ///
    /// Refuses a symlink, a directory owned by another user, or one that is group- or
    /// world-writable. An existing directory's mode is never changed.
    pub fn open(path: &Path, create: bool) -> Result<SecretDir> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    refuse_symlink(parent)?;
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(parent)
                        .map_err(Error::io(parent, "create directory"))?;
                }
                match std::fs::DirBuilder::new().mode(0o700).create(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(Error::io(path, "create directory")(e)),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Io {
                    path: path.to_path_buf(),
                    action: "open secrets directory",
                    source: e,
                })
            }
            Err(e) => return Err(Error::io(path, "inspect")(e)),
        }
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::ELOOP | Errno::ENOTDIR => unsafe_path(
                path,
                "the secrets directory is a symlink or not a directory; point --secrets-dir at a real directory",
            ),
            e => Error::io(path, "open secrets directory")(e.into()),
        })?;
        let dir = SecretDir {
            path: path.to_path_buf(),
            fd,
        };
        dir.check(true)?;
        Ok(dir)
    }

    /// Open `dir`, at or below `root`, without following a symlink anywhere below `root`.
    ///
    /// With `create`, a missing `dir` is made 0700 and returned, so that the caller can record
    /// it as compose-secrets' own, and its missing parents are made 0755 (under the umask)
    /// belonging to the owner of the directory above them; `Ok(None)` when `dir` is missing
    /// and `create` is not set. An existing directory's mode is never changed, and
    /// one that other users can write to is refused. `ours` also requires it to belong to
    /// the running user (compose-secrets' own directories).
    pub fn open_below(
        root: &Path,
        dir: &Path,
        create: bool,
        ours: bool,
    ) -> Result<Option<(SecretDir, Vec<PathBuf>)>> {
        let rel = dir
            .strip_prefix(root)
            .map_err(|_| unsafe_path(dir, &format!("is not inside {}", root.display())))?;
        let mut fd = nix::fcntl::open(
            root,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::ENOENT if !create => Error::io(root, "open directory")(e.into()),
            e => Error::io(root, "open directory")(e.into()),
        })?;
        let mut path = root.to_path_buf();
        let mut created = Vec::new();
        let last = rel.components().count();
        for (depth, component) in rel.components().enumerate() {
            let leaf = depth + 1 == last;
            let std::path::Component::Normal(name) = component else {
                return Err(unsafe_path(
                    dir,
                    "a secret's directory may not contain `.` or `..`",
                ));
            };
            path.push(name);
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let next =
                match nix::fcntl::openat(&fd, name, flags, Mode::empty()) {
                    Ok(next) => next,
                    Err(Errno::ENOENT) if create => {
                        // Only the directory holding the files is private; its parents are
                        // made as `mkdir -p` would, and belong to whoever owns theirs (the
                        // project's user, not root under sudo).
                        let mode = if leaf { 0o700 } else { 0o755 };
                        match nix::sys::stat::mkdirat(&fd, name, Mode::from_bits_truncate(mode)) {
                            Ok(()) if leaf => created.push(path.clone()),
                            Ok(()) => give_to_parents_owner(&fd, name, &path)?,
                            Err(Errno::EEXIST) => {}
                            Err(e) => return Err(Error::io(&path, "create directory")(e.into())),
                        }
                        nix::fcntl::openat(&fd, name, flags, Mode::empty())
                            .map_err(|e| Error::io(&path, "open directory")(e.into()))?
                    }
                    Err(Errno::ENOENT) => return Ok(None),
                    Err(Errno::ELOOP | Errno::ENOTDIR) => return Err(unsafe_path(
                        &path,
                        "is a symlink or not a directory; compose-secrets never writes through one",
                    )),
                    Err(e) => return Err(Error::io(&path, "open directory")(e.into())),
                };
            fd = next;
        }
        let dir = SecretDir { path, fd };
        dir.check(ours)?;
        Ok(Some((dir, created)))
    }

    /// Not writable by other users; with `ours`, owned by the running user, or (when root
    /// runs compose-secrets in a user's project, as `sudo compose-secrets load` does) by the
    /// owner of the directory above it.
    fn check(&self, ours: bool) -> Result<()> {
        let st = fstat(&self.fd).map_err(|e| Error::io(&self.path, "stat")(e.into()))?;
        let euid = Uid::effective().as_raw();
        let parents_owner = || {
            self.path
                .parent()
                .and_then(|p| std::fs::symlink_metadata(p).ok())
                .map(|m| m.uid())
        };
        if ours && st.st_uid != euid && !(euid == 0 && parents_owner() == Some(st.st_uid)) {
            return Err(unsafe_path(
                &self.path,
                &format!(
                    "the directory is owned by uid {}, neither the user running compose-secrets (uid {euid}) nor \
                     the owner of the directory above it; run compose-secrets as uid {} (or as root), or \
                     `chown` the directory",
                    st.st_uid, st.st_uid
                ),
            ));
        }
        let mode = st.st_mode & 0o7777;
        if mode & 0o022 != 0 {
            return Err(unsafe_path(
                &self.path,
                &format!(
                    "the directory is group- or world-writable (mode {mode:04o}): another user could replace \
                     a secret file; run `chmod go-w` on it"
                ),
            ));
        }
        Ok(())
    }

    /// The directory's mode and owner, for `verify`.
    pub fn mode_and_owner(&self) -> Result<(u32, u32)> {
        let st = fstat(&self.fd).map_err(|e| Error::io(&self.path, "stat")(e.into()))?;
        Ok((st.st_mode & 0o7777, st.st_uid))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read a file without following symlinks; `Ok(None)` when it does not exist.
    pub fn read(&self, name: &str) -> Result<Option<FileState>> {
        check_file_name(&self.path, name)?;
        let path = self.path.join(name);
        let fd = match nix::fcntl::openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => {
                return Err(unsafe_path(
                    &path,
                    "the secret file is a symlink; remove it",
                ))
            }
            Err(Errno::EACCES) if Uid::effective().is_root() => {
                return Err(Error::io(&path, "read")(Errno::EACCES.into()))
            }
            Err(e) => return Err(Error::io(&path, "read")(e.into())),
        };
        let st = fstat(&fd).map_err(|e| Error::io(&path, "stat")(e.into()))?;
        if st.st_mode & libc_s_ifmt() != libc_s_ifreg() {
            return Err(unsafe_path(&path, "not a regular file"));
        }
        let mut file = File::from(fd);
        let mut contents = Zeroizing::new(Vec::new());
        // One byte past the limit tells a file at the limit from a longer one: a truncated
        // read would be taken for the file's value and a rollback would restore it cut short.
        std::io::Read::by_ref(&mut file)
            .take(MAX_READ_BYTES + 1)
            .read_to_end(&mut contents)
            .map_err(Error::io(&path, "read"))?;
        if contents.len() as u64 > MAX_READ_BYTES {
            return Err(Error::config(
                &path,
                format!(
                    "the secret file is larger than {MAX_READ_BYTES} bytes; refusing to read it (no secret is that large)"
                ),
            ));
        }
        Ok(Some(FileState {
            contents,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime_ns: i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec),
            #[allow(clippy::useless_conversion)]
            id: (u64::from(st.st_dev), u64::from(st.st_ino)),
        }))
    }

    /// Atomically replace `name` with `contents`, with its final mode and owner set before the rename.
    pub fn write_atomic(&self, name: &str, contents: &[u8], mode: u32, owner: Owner) -> Result<()> {
        self.stage(name, contents, mode, owner)?.rename()?;
        self.sync()
    }

    /// Write `contents` under a temporary name in this directory, with `name`'s final mode
    /// and owner, and fsync it: all of an atomic write but the rename. Dropped without
    /// `Staged::rename`, the temporary file is removed; a run killed meanwhile leaves one
    /// that `remove_stale_temps` clears.
    pub fn stage(
        &self,
        name: &str,
        contents: &[u8],
        mode: u32,
        owner: Owner,
    ) -> Result<Staged<'_>> {
        check_file_name(&self.path, name)?;
        let path = self.path.join(name);
        let temp = format!("{TEMP_PREFIX}{}.{}", std::process::id(), random_suffix());
        // Mode 0 until fchmod: nothing can open the temp file while it is being filled.
        let fd = nix::fcntl::openat(
            &self.fd,
            temp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(&path, "create temp file")(e.into()))?;
        let staged = Staged {
            dir: self,
            temp,
            name: name.to_string(),
        };
        fill(fd, contents, mode, owner, &path)?;
        Ok(staged)
    }

    /// fsync the directory: the renames before it are durable once it returns.
    pub fn sync(&self) -> Result<()> {
        nix::unistd::fsync(&self.fd).map_err(|e| Error::io(&self.path, "fsync directory")(e.into()))
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        check_file_name(&self.path, name)?;
        nix::unistd::unlinkat(&self.fd, name, nix::unistd::UnlinkatFlags::NoRemoveDir)
            .map_err(|e| Error::io(self.path.join(name), "remove")(e.into()))?;
        nix::unistd::fsync(&self.fd).map_err(|e| Error::io(&self.path, "fsync directory")(e.into()))
    }

    /// The file `name` when it is a regular file whose content has `fingerprint` under `key`;
    /// `None` for anything else: missing, a symlink (never followed), a FIFO or socket (never
    /// waited on), unreadable, too large, or changed.
    pub fn holding(
        &self,
        name: &str,
        fingerprint: &str,
        key: &FingerprintKey,
    ) -> Option<FileState> {
        if !fingerprint.starts_with(crate::secret::FINGERPRINT_PREFIX) {
            return None;
        }
        self.read(name)
            .ok()
            .flatten()
            .filter(|st| key.fingerprint(&st.contents) == fingerprint)
    }

    /// Remove `name` only if it is a regular file that still holds `fingerprint`, checked
    /// just before the unlink (and the name still the file that was checked); `Ok(false)`
    /// when it is not, and then nothing is removed.
    pub fn remove_if_holds(
        &self,
        name: &str,
        fingerprint: &str,
        key: &FingerprintKey,
    ) -> Result<bool> {
        let Some(checked) = self.holding(name, fingerprint, key) else {
            return Ok(false);
        };
        let now = fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok();
        #[allow(clippy::useless_conversion)]
        if now.map(|st| (u64::from(st.st_dev), u64::from(st.st_ino))) != Some(checked.id) {
            return Ok(false);
        }
        self.remove(name)?;
        Ok(true)
    }

    /// Whether an entry named `name` exists (a file, a link, anything), without following it.
    pub fn has(&self, name: &str) -> bool {
        check_file_name(&self.path, name).is_ok()
            && fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
    }

    /// Names of the files (and links) in the directory, temp files and directories excluded.
    pub fn files(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for name in self.entries()? {
            let st = fstatat(&self.fd, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW);
            if st.is_ok_and(|st| st.st_mode & libc_s_ifmt() != 0o040_000) {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Names of the entries in the directory (files, links, anything), temp files excluded.
    pub fn entries(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .all_names()?
            .into_iter()
            .filter(|n| !n.starts_with(TEMP_PREFIX))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Every name in the directory, read through the open descriptor (not the path, which
    /// could name another directory by now).
    fn all_names(&self) -> Result<Vec<String>> {
        let fd = nix::unistd::dup(&self.fd).map_err(|e| Error::io(&self.path, "list")(e.into()))?;
        let mut dir =
            nix::dir::Dir::from_fd(fd).map_err(|e| Error::io(&self.path, "list")(e.into()))?;
        let mut names = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(|e| Error::io(&self.path, "list")(e.into()))?;
            if let Ok(name) = entry.file_name().to_str() {
                if name != "." && name != ".." {
                    names.push(name.to_string());
                }
            }
        }
        Ok(names)
    }

    /// Remove temp files whose writing process no longer exists (a run killed mid-write).
    /// Safe without the run lock: a live writer's temp file is never touched. Anything else
    /// named like a temp file (a directory, a socket) is left alone and returned, so the
    /// caller can name it; it never stops a run.
    pub fn remove_orphaned_temps(&self) -> Result<TempCleanup> {
        let mut cleanup = TempCleanup::default();
        for name in self.all_names()? {
            let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
                continue;
            };
            let regular = fstatat(&self.fd, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                .is_ok_and(|st| st.st_mode & libc_s_ifmt() == libc_s_ifreg());
            if !regular {
                cleanup.skipped.push(self.path.join(&name));
                continue;
            }
            let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            let alive = pid == i32::try_from(std::process::id()).unwrap_or(0)
                || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                    != Err(Errno::ESRCH);
            if !alive {
                nix::unistd::unlinkat(
                    &self.fd,
                    name.as_str(),
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                )
                .map_err(|e| Error::io(self.path.join(&name), "remove temp file")(e.into()))?;
                cleanup.removed += 1;
            }
        }
        Ok(cleanup)
    }

    /// Back to mode 0700, for a directory compose-secrets created whose mode was loosened.
    pub fn tighten(&self) -> Result<bool> {
        let (mode, _) = self.mode_and_owner()?;
        if mode == 0o700 {
            return Ok(false);
        }
        fchmod(&self.fd, Mode::from_bits_truncate(0o700))
            .map_err(|e| Error::io(&self.path, "chmod 0700")(e.into()))?;
        Ok(true)
    }

    pub fn as_fd(&self) -> impl AsFd + '_ {
        self.fd.as_fd()
    }
}

/// Atomically write a file outside the secrets directory (`.env`, an env-file output, state),
/// with the given mode, keeping the existing owner. Refuses to write through a symlink.
pub fn write_file_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::config(path, "not a file path"))?;
    let owner = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(unsafe_path(
                path,
                "is a symlink; compose-secrets never writes through one",
            ))
        }
        Ok(meta) => Owner {
            uid: Some(meta.uid()),
            gid: Some(meta.gid()),
        },
        Err(_) => Owner::default(),
    };
    let dir_fd = nix::fcntl::open(
        &dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(&dir, "open directory")(e.into()))?;
    let holder = SecretDir {
        path: dir,
        fd: dir_fd,
    };
    // Keeping the current owner needs no privilege unless it differs from ours.
    let owner = if owner.uid == Some(Uid::effective().as_raw())
        && owner.gid == Some(Gid::effective().as_raw())
    {
        Owner::default()
    } else {
        owner
    };
    holder.write_atomic(name, contents, mode, owner)
}

/// Clear temp files orphaned by killed runs in the directory holding `file` (e.g. `.env`).
pub fn remove_orphaned_temps_beside(file: &Path) -> Result<TempCleanup> {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(fd) = nix::fcntl::open(
        &dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return Ok(TempCleanup::default());
    };
    SecretDir { path: dir, fd }.remove_orphaned_temps()
}

/// Permissions and ownership of a path, for `verify`.
pub fn describe_mode(path: &Path) -> std::io::Result<(u32, u32, u32, bool)> {
    let meta = std::fs::symlink_metadata(path)?;
    Ok((
        meta.permissions().mode() & 0o7777,
        meta.uid(),
        meta.gid(),
        meta.file_type().is_symlink(),
    ))
}

/// As root, a directory just made for a secret's parents goes to the owner of the directory
/// it was made in.
fn give_to_parents_owner(parent: &OwnedFd, name: &std::ffi::OsStr, path: &Path) -> Result<()> {
    if !Uid::effective().is_root() {
        return Ok(());
    }
    let st = fstat(parent).map_err(|e| Error::io(path, "stat")(e.into()))?;
    nix::unistd::fchownat(
        parent,
        name,
        Some(Uid::from_raw(st.st_uid)),
        Some(nix::unistd::Gid::from_raw(st.st_gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| Error::io(path, "chown directory")(e.into()))
}

fn refuse_symlink(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(unsafe_path(path, "is a symlink")),
        _ => Ok(()),
    }
}

/// A secret file written and synced under a temporary name, waiting for its rename.
#[must_use = "dropped without `rename`, the staged file is removed"]
pub struct Staged<'d> {
    dir: &'d SecretDir,
    temp: String,
    name: String,
}

impl Staged<'_> {
    /// Put the staged file in place. The rename is durable after the directory's `sync`.
    pub fn rename(mut self) -> Result<()> {
        let dir = self.dir;
        nix::fcntl::renameat(&dir.fd, self.temp.as_str(), &dir.fd, self.name.as_str())
            .map_err(|e| Error::io(&dir.path.join(&self.name), "rename")(e.into()))?;
        // Nothing left for `drop` to remove.
        self.temp.clear();
        Ok(())
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        if self.temp.is_empty() {
            return;
        }
        let _ = nix::unistd::unlinkat(
            &self.dir.fd,
            self.temp.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }
}

/// Owner, then mode, then contents, then fsync: the file is complete and has its final
/// mode and owner before anything can rename it into place.
fn fill(fd: OwnedFd, contents: &[u8], mode: u32, owner: Owner, path: &Path) -> Result<()> {
    if owner.uid.is_some() || owner.gid.is_some() {
        fchown(
            &fd,
            owner.uid.map(Uid::from_raw),
            owner.gid.map(Gid::from_raw),
        )
        .map_err(|e| {
            if e == Errno::EPERM {
                ownership_refused(path, owner)
            } else {
                Error::io(path, "chown")(e.into())
            }
        })?;
    }
    // chown may clear setuid bits; the mode goes last so it is exactly what was asked.
    fchmod(&fd, Mode::from_bits_truncate(mode)).map_err(|e| Error::io(path, "chmod")(e.into()))?;
    let mut file = File::from(fd);
    file.write_all(contents).map_err(Error::io(path, "write"))?;
    file.sync_all().map_err(Error::io(path, "fsync"))
}

fn check_file_name(dir: &Path, name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(unsafe_path(
            &dir.join(name),
            "a secret file must be a plain file name directly inside the secrets directory",
        ));
    }
    Ok(())
}

fn unsafe_path(path: &Path, message: &str) -> Error {
    Error::UnsafePath {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn ownership_refused(path: &Path, owner: Owner) -> Error {
    let want = format!(
        "{}:{}",
        owner.uid.map_or_else(|| "-".into(), |u| u.to_string()),
        owner.gid.map_or_else(|| "-".into(), |g| g.to_string())
    );
    Error::UnsafePath {
        path: path.to_path_buf(),
        message: format!(
            "cannot give the file owner {want}: compose-secrets runs as uid {} without the right to chown. \
             Run it as root (e.g. `sudo make load-secrets`), run it as that user, or remove `owner` from the \
             secret's x-compose-secrets and make the container's user match yours (see README, \"File owners\")",
            Uid::effective()
        ),
    }
}

fn random_suffix() -> String {
    use rand::TryRngCore as _;
    let mut bytes = [0u8; 8];
    // A collision only makes O_EXCL fail, which is reported; a fallback keeps this infallible.
    if rand::rngs::OsRng.try_fill_bytes(&mut bytes).is_err() {
        bytes = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos().to_le_bytes())
            .unwrap_or_default()[..8]
            .try_into()
            .unwrap_or_default();
    }
    hex::encode(bytes)
}

const fn libc_s_ifmt() -> u32 {
    0o170_000
}

const fn libc_s_ifreg() -> u32 {
    0o100_000
}

#[cfg(test)]
mod tests;
