//! The binary (or any command) as a child the test does not wait on at once: a long-running
//! `sync --watch` to poll and signal, or a run with a hard time bound so a hang fails the test
//! with a message instead of stalling CI. Output goes to files, never pipes: a child that
//! writes a lot while we poll can never block on a full pipe.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::harness::Run;

/// How long a run bounded by [`run_bounded`] may take: only a hang takes longer.
const RUN_BOUND: Duration = Duration::from_secs(60);

/// A running `compose-secrets`, killed when dropped.
pub struct Background {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Background {
    pub fn spawn(run: Run) -> Background {
        let dir = tempfile::tempdir().unwrap();
        let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
        let mut cmd = run.cmd;
        cmd.stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap());
        Background {
            child: cmd.spawn().expect("spawn compose-secrets"),
            stdout,
            stderr,
            _dir: dir,
        }
    }

    pub fn stdout(&self) -> String {
        read(&self.stdout)
    }

    pub fn stderr(&self) -> String {
        read(&self.stderr)
    }

    /// Wait (up to `limit`, a bound for a hung run, not a timing claim) until `what` is true;
    /// the run exiting first is a failure.
    pub fn wait_for(&mut self, what: &str, limit: Duration, mut done: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "compose-secrets exited ({status}) while waiting for {what}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it has not exited yet.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn signal(&self, signal: Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, signal).unwrap();
    }

    /// SIGTERM, then its exit code (-1 when killed by a signal); a run still going two
    /// minutes later is a failure.
    pub fn terminate(&mut self) -> i32 {
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "still running two minutes after SIGTERM\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The exit code, once the process exits by itself within `limit`; killed and failed
    /// otherwise, and failed when a signal ended it.
    pub fn exit_within(&mut self, limit: Duration, what: &str) -> i32 {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or_else(|| {
                    panic!(
                        "{what}: killed by a signal ({status})\nstderr:\n{}",
                        self.stderr()
                    )
                });
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "{what}: still running after {limit:?}\nstderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// What a bounded run did.
pub struct Bounded {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Run with stdin closed and a hard time bound: a hang is a failure with a message, not a stuck CI job.
pub fn run_bounded(cmd: Command) -> Bounded {
    run_within(cmd, RUN_BOUND)
}

pub fn run_within(mut cmd: Command, bound: Duration) -> Bounded {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let mut child = cmd.spawn().expect("spawn");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{:?} did not finish within {}s (hung)\nstderr so far:\n{}",
                cmd.get_args().collect::<Vec<_>>(),
                bound.as_secs(),
                truncate(&read(&err_path))
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Bounded {
        code: status.code().unwrap_or(-1),
        stdout: read(&out_path),
        stderr: read(&err_path),
        elapsed: started.elapsed(),
    }
}

/// Run under a 2 GiB address-space limit so an unbounded read fails fast instead of eating the host.
pub fn with_memory_cap(cmd: &Command) -> Command {
    let mut capped = Command::new("sh");
    capped
        .arg("-c")
        .arg("ulimit -v 2097152 && exec \"$0\" \"$@\"")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        capped.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => capped.env(k, v),
            None => capped.env_remove(k),
        };
    }
    capped
}

/// At most the first 4000 bytes of `s`, for failure messages.
pub fn truncate(s: &str) -> String {
    const MAX: usize = 4000;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &s[..end], s.len())
}
