//! The run lock: an exclusive `flock` on `.runtime/.lock`, taken by every command that writes
//! before it reads anything it will write back, so two runs never interleave.

use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg, OFlag};

use super::runtime_dir::{RuntimeDir, LOCK};
use crate::error::{Error, Result};

/// How often a waiting run tries again.
const RETRY: Duration = Duration::from_millis(100);

/// Held for the life of the value; the kernel releases it if the process dies.
pub struct RunLock {
    _lock: Flock<std::fs::File>,
}

impl RunLock {
    /// Wait up to `timeout` for the lock, without blocking the async runtime's threads.
    pub async fn acquire(dir: &RuntimeDir, timeout: Duration) -> Result<RunLock> {
        let started = Instant::now();
        loop {
            match Self::try_acquire(dir)? {
                Some(lock) => return Ok(lock),
                None if started.elapsed() >= timeout => {
                    return Err(Error::Locked {
                        path: dir.file(LOCK),
                        waited_secs: started.elapsed().as_secs(),
                    })
                }
                None => tokio::time::sleep(RETRY).await,
            }
        }
    }

    /// The lock if it is free now; `None` when another run holds it.
    pub fn try_acquire(dir: &RuntimeDir) -> Result<Option<RunLock>> {
        let file = dir
            .open_file(LOCK, OFlag::O_WRONLY | OFlag::O_CREAT, 0o600)?
            .ok_or_else(|| {
                Error::io(dir.file(LOCK), "open lock file")(std::io::ErrorKind::NotFound.into())
            })?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(RunLock { _lock: lock })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(Error::io(dir.file(LOCK), "lock")(e.into())),
        }
    }

    /// Whether another run holds the lock, asked without creating anything (for dry runs and
    /// `verify`). A lock file that is not a regular file (a FIFO, a symlink) is an error.
    pub fn busy(dir: &RuntimeDir) -> crate::error::Result<bool> {
        let Some(file) = dir.open_file(LOCK, OFlag::O_WRONLY, 0)? else {
            return Ok(false);
        };
        Ok(matches!(
            Flock::lock(file, FlockArg::LockExclusiveNonblock),
            Err((_, nix::errno::Errno::EWOULDBLOCK))
        ))
    }
}
