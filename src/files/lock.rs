//! The run lock: an exclusive `flock` on `.runtime/.lock`, so two runs never interleave writes.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};

/// Held for the life of the value; the kernel releases it if the process dies.
pub struct RunLock {
    _lock: Flock<std::fs::File>,
}

impl RunLock {
    /// Wait up to `timeout` for the lock.
    pub fn acquire(path: &Path, timeout: Duration) -> Result<RunLock> {
        let started = Instant::now();
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
                .open(path)
                .map_err(Error::io(path, "open lock file"))?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(RunLock { _lock: lock }),
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    if started.elapsed() >= timeout {
                        return Err(Error::Locked {
                            path: path.to_path_buf(),
                            waited_secs: started.elapsed().as_secs(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err((_, e)) => return Err(Error::io(path, "lock")(e.into())),
            }
        }
    }
}
