//! The runtime directory (`.runtime`): compose-secrets' own, opened once and held by its
//! descriptor for the whole run, so that swapping it for a symlink mid-run changes nothing.
//!
//! Every file in it (state, lock, audit log and key) is opened relative to that descriptor,
//! without following a symlink, without blocking (a FIFO planted there is refused instead of
//! hanging the run), and only when it is a regular file.

use std::fs::File;
use std::io::Read as _;
use std::os::fd::AsFd as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, Mode};
use zeroize::Zeroizing;

use super::secret_dir::{Owner, SecretDir};
use crate::error::{Error, Result};

pub const STATE: &str = "state.json";
pub const LOCK: &str = ".lock";
pub const AUDIT_LOG: &str = "audit.log";
pub const AUDIT_KEY: &str = "audit.key";

/// The runtime directory, open.
pub struct RuntimeDir {
    dir: SecretDir,
    /// Files made in memory and written with the run's first durable write (see [`Self::stage`]).
    staged: std::sync::Mutex<Vec<(String, Zeroizing<Vec<u8>>)>>,
}

impl RuntimeDir {
    /// Open the runtime directory; with `create`, make it (mode 0700, with missing parents)
    /// when it is missing. `Ok(None)` when it is missing and `create` is not set: read-only
    /// commands never create it.
    pub fn open(path: &Path, create: bool) -> Result<Option<RuntimeDir>> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(refused(path, "the runtime directory is a symlink"))
            }
            Ok(meta) if !meta.is_dir() => {
                return Err(refused(path, "the runtime directory is not a directory"))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(path)
                    .map_err(Error::io(path, "create directory"))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, "inspect")(e)),
        }
        Ok(Some(RuntimeDir {
            dir: SecretDir::open(path, false)?,
            staged: std::sync::Mutex::new(Vec::new()),
        }))
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// A regular file in the directory, opened with `flags` (plus no-follow, non-blocking and
    /// close-on-exec); `Ok(None)` when it does not exist (and `flags` does not create it).
    pub fn open_file(&self, name: &str, flags: OFlag, mode: u32) -> Result<Option<File>> {
        let path = self.file(name);
        let fd = match nix::fcntl::openat(
            self.dir.as_fd(),
            name,
            flags | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP) => return Err(refused(&path, "is a symlink; remove it")),
            // Opening a FIFO for writing without a reader, or a socket.
            Err(Errno::ENXIO | Errno::EOPNOTSUPP) => {
                return Err(refused(&path, "is not a regular file; remove it"))
            }
            Err(e) => return Err(Error::io(&path, "open")(e.into())),
        };
        let st = fstat(&fd).map_err(|e| Error::io(&path, "stat")(e.into()))?;
        if st.st_mode & 0o170_000 != 0o100_000 {
            return Err(refused(&path, "is not a regular file; remove it"));
        }
        let file = File::from(fd);
        // Reads and writes of a regular file never block; make them plain blocking I/O again.
        let _ = nix::fcntl::fcntl(file.as_fd(), nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()))
            .map_err(|e| Error::io(&path, "open")(e.into()))?;
        Ok(Some(file))
    }

    /// Keep a new file (the per-install key) in memory until this run first writes something
    /// that lasts: a run that fails before then leaves the directory exactly as it was, and one
    /// that writes state made with the key writes the key too.
    pub fn stage(&self, name: &str, contents: Zeroizing<Vec<u8>>) {
        self.staged_files().push((name.to_string(), contents));
    }

    /// Write the staged files (mode 0600, never over an existing one).
    pub fn flush_staged(&self) -> Result<()> {
        let staged = std::mem::take(&mut *self.staged_files());
        for (name, contents) in staged {
            let path = self.file(&name);
            match self.open_file(
                &name,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                0o600,
            ) {
                Ok(Some(mut file)) => {
                    std::io::Write::write_all(&mut file, &contents)
                        .and_then(|()| file.sync_all())
                        .map_err(Error::io(&path, "write"))?;
                }
                Err(Error::Io { source, .. })
                    if source.raw_os_error() == Some(nix::libc::EEXIST) => {}
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn staged_files(&self) -> std::sync::MutexGuard<'_, Vec<(String, Zeroizing<Vec<u8>>)>> {
        self.staged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A file's whole contents (up to `max` bytes), or `None` when it does not exist.
    pub fn read(&self, name: &str, max: u64) -> Result<Option<Zeroizing<Vec<u8>>>> {
        if let Some((_, contents)) = self.staged_files().iter().find(|(n, _)| n == name) {
            return Ok(Some(contents.clone()));
        }
        let Some(file) = self.open_file(name, OFlag::O_RDONLY, 0)? else {
            return Ok(None);
        };
        let mut bytes = Zeroizing::new(Vec::new());
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(Error::io(self.file(name), "read"))?;
        if bytes.len() as u64 > max {
            return Err(refused(
                &self.file(name),
                &format!("is larger than {max} bytes; compose-secrets never wrote it"),
            ));
        }
        Ok(Some(bytes))
    }

    /// Replace a file atomically (mode set before the rename), within the held directory.
    pub fn write(&self, name: &str, contents: &[u8], mode: u32) -> Result<()> {
        self.flush_staged()?;
        self.dir
            .write_atomic(name, contents, mode, Owner::default())
    }

    /// The directory itself, for removing leftover temp files.
    pub fn dir(&self) -> &SecretDir {
        &self.dir
    }
}

fn refused(path: &Path, message: &str) -> Error {
    Error::UnsafePath {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_or_symlink_inside_is_refused_not_followed_or_waited_on() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(".runtime");
        let dir = RuntimeDir::open(&path, true).unwrap().unwrap();
        nix::unistd::mkfifo(&path.join(STATE), Mode::from_bits_truncate(0o600)).unwrap();
        let e = dir.read(STATE, 1024).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = dir
            .open_file(AUDIT_LOG, OFlag::O_WRONLY | OFlag::O_APPEND, 0o600)
            .map(|_| ());
        assert!(e.is_ok(), "a missing file is not an error");
        nix::unistd::mkfifo(&path.join(AUDIT_LOG), Mode::from_bits_truncate(0o600)).unwrap();
        let e = dir
            .open_file(AUDIT_LOG, OFlag::O_WRONLY | OFlag::O_APPEND, 0o600)
            .unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        std::os::unix::fs::symlink("/etc/hostname", path.join(AUDIT_KEY)).unwrap();
        let e = dir.read(AUDIT_KEY, 1024).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
    }

    #[test]
    fn missing_is_none_unless_created_and_a_symlink_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(".runtime");
        assert!(RuntimeDir::open(&path, false).unwrap().is_none());
        assert!(!path.exists());
        RuntimeDir::open(&path, true).unwrap().unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(RuntimeDir::open(&link, false).is_err());
    }

    #[test]
    fn the_held_directory_is_used_even_if_the_path_is_swapped() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(".runtime");
        let dir = RuntimeDir::open(&path, true).unwrap().unwrap();
        std::fs::rename(&path, tmp.path().join("moved")).unwrap();
        std::fs::create_dir(tmp.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("elsewhere"), &path).unwrap();
        dir.write(STATE, b"{}", 0o600).unwrap();
        assert!(tmp.path().join("moved").join(STATE).exists());
        assert!(!tmp.path().join("elsewhere").join(STATE).exists());
    }
}
