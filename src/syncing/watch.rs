//! `sync --watch`: reconcile at once, then poll the store every interval (±10 % jitter, so a
//! fleet started together does not poll together), backing off while steps fail (doubling up
//! to a cap, never sooner than a 429's `Retry-After`). SIGTERM, SIGINT and SIGHUP stop it with
//! exit 0 at its next wait (the interval, a back-off, a store read); a transaction in
//! progress (intent to outcome) is finished first, so a restart is never cut short and no
//! intent is left open (see `crate::interrupt`).
//!
//! Output: one line per change on stdout (text, or a JSON object with `--json`), and the
//! watcher's own lines (start, back-off, stop) on stderr. Nothing is written while nothing
//! changes: no audit line, no state write, no Docker call.

use std::time::Duration;

use serde_json::json;

use super::{step, Applied, Parts, Session, SyncRequest};
use crate::audit::Outcome;
use crate::error::{exit, Error, Result};
use crate::interrupt;
use crate::output::{printable, short_version, Reporter};

/// Jitter on every wait: ±10 %.
const JITTER: f64 = 0.1;
/// The longest back-off, whatever the interval.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// The back-off cap is this many intervals (within [30 s, 15 min]).
const BACKOFF_INTERVALS: u32 = 8;

/// Follow the store until SIGTERM, SIGINT or SIGHUP.
pub async fn run(parts: &Parts<'_>, request: &SyncRequest, interval: Duration) -> Result<u8> {
    let log = Log {
        reporter: parts.site.reporter,
    };
    interrupt::command_stops_itself();
    let mut session = Session::default();
    let mut backoff = Backoff::new(interval);
    log.info(&format!(
        "watching the store every {} (±10 %); SIGTERM, SIGINT or SIGHUP stops it at its next wait, after the transaction in progress",
        human(interval)
    ));
    let mut first = true;
    loop {
        let mut announced = false;
        let result = {
            let current = step(parts, &mut session, request);
            tokio::pin!(current);
            loop {
                tokio::select! {
                    biased;
                    result = &mut current => break result,
                    // No transaction in progress: the step is dropped at its wait (a store
                    // read, a back-off), before it changed anything or after it finished one.
                    name = interrupt::stop_point() => {
                        log.info(&format!("{name}: stopped"));
                        return Ok(exit::OK);
                    }
                    name = interrupt::signalled(), if !announced => {
                        log.info(&format!("{name}: finishing the transaction in progress"));
                        announced = true;
                    }
                }
            }
        };
        let wait = match result {
            Ok(outcome) => {
                for applied in &outcome.applied {
                    log.change(applied);
                }
                match outcome.failure {
                    None | Some(Error::SyncHeld { .. }) => backoff.succeeded(),
                    Some(Error::Several { errors })
                        if errors.iter().all(|e| matches!(e, Error::SyncHeld { .. })) =>
                    {
                        backoff.succeeded()
                    }
                    // Source, files and containers may disagree: a person looks first.
                    Some(e @ Error::RollbackFailed { .. }) => return Err(e),
                    Some(e) => {
                        let wait = backoff.failed(e.retry_after());
                        log.backoff(&e, wait, backoff.failures);
                        wait
                    }
                }
            }
            // A project compose-secrets cannot read at start is a mistake to fix, not wait out.
            Err(e) if first && e.exit_code() == exit::USAGE => return Err(e),
            Err(e) => {
                let wait = backoff.failed(e.retry_after());
                log.backoff(&e, wait, backoff.failures);
                wait
            }
        };
        first = false;
        tokio::select! {
            biased;
            name = interrupt::stop_point() => {
                log.info(&format!("{name}: stopped"));
                return Ok(exit::OK);
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// How long to wait before the next step.
#[derive(Debug, Clone)]
pub struct Backoff {
    interval: Duration,
    /// Steps failed in a row.
    pub failures: u32,
}

impl Backoff {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            failures: 0,
        }
    }

    /// After a step that worked: the interval, jittered.
    pub fn succeeded(&mut self) -> Duration {
        self.failures = 0;
        jitter(self.interval, rand::random::<f64>())
    }

    /// After a failed step: the interval doubled per failure in a row (jittered, capped), and
    /// never less than the store's `Retry-After`.
    pub fn failed(&mut self, retry_after: Option<Duration>) -> Duration {
        self.failed_with(retry_after, rand::random::<f64>())
    }

    /// [`Backoff::failed`] with the random draw given (`unit` in [0, 1)).
    pub fn failed_with(&mut self, retry_after: Option<Duration>, unit: f64) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let doubling = 2u32.saturating_pow(self.failures.saturating_sub(1).min(16));
        let wait = self
            .interval
            .saturating_mul(doubling)
            .min(self.cap())
            .max(self.interval);
        jitter(wait, unit).max(retry_after.unwrap_or_default())
    }

    fn cap(&self) -> Duration {
        self.interval
            .saturating_mul(BACKOFF_INTERVALS)
            .clamp(Duration::from_secs(30), MAX_BACKOFF)
    }
}

/// `d` scaled by a factor in [1 - JITTER, 1 + JITTER), `unit` in [0, 1) choosing where.
fn jitter(d: Duration, unit: f64) -> Duration {
    let factor = 1.0 - JITTER + 2.0 * JITTER * unit.clamp(0.0, 1.0);
    d.mul_f64(factor)
}

fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        crate::rotation::policy::human(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// The watcher's lines: changes on stdout, its own lines on stderr; JSON with `--json`.
struct Log<'a> {
    reporter: &'a Reporter,
}

impl Log<'_> {
    fn info(&self, message: &str) {
        if self.reporter.quiet {
            return;
        }
        if self.reporter.json {
            eprintln!(
                "{}",
                json!({"time": crate::clock::now_rfc3339(), "event": "info", "message": message})
            );
        } else {
            eprintln!(
                "{} compose-secrets sync: {}",
                crate::clock::now_rfc3339(),
                printable(message)
            );
        }
    }

    fn change(&self, applied: &Applied) {
        if self.reporter.quiet && applied.outcome == Outcome::Ok {
            return;
        }
        let time = crate::clock::now_rfc3339();
        if self.reporter.json {
            println!(
                "{}",
                json!({"time": time, "event": "change", "change": applied})
            );
            return;
        }
        let version = |v: &Option<String>| v.as_deref().map_or("-", short_version).to_string();
        let what = match applied.outcome {
            Outcome::Ok => "synced",
            Outcome::SyncHeld => "held",
            Outcome::RolledBack => "rolled back",
            Outcome::RollbackFailed => "ROLLBACK FAILED",
            Outcome::Recovered => "recovered",
            Outcome::Failed | Outcome::Intent => "failed",
        };
        let mut line = format!(
            "{time} compose-secrets sync: {}: {what} {} → {}",
            applied.secret,
            version(&applied.old_version),
            version(&applied.new_version)
        );
        if !applied.restarted.is_empty() {
            line.push_str(&format!("; restarted {}", applied.restarted.join(", ")));
        }
        if let Some(e) = &applied.error {
            line.push_str(&format!("; {e}"));
        }
        println!("{}", printable(&line));
    }

    fn backoff(&self, error: &Error, wait: Duration, failures: u32) {
        if self.reporter.json {
            eprintln!(
                "{}",
                json!({
                    "time": crate::clock::now_rfc3339(),
                    "event": "backoff",
                    "error": {"kind": error.kind(), "message": error.to_string(), "exit_code": error.exit_code()},
                    "failures": failures,
                    "retry_in_secs": wait.as_secs_f64(),
                })
            );
        } else {
            eprintln!(
                "{} compose-secrets sync: step failed ({failures} in a row): {}; backing off, next try in {}; files and containers are left as they are",
                crate::clock::now_rfc3339(),
                printable(&error.to_string()),
                human_rounded(wait)
            );
        }
    }
}

fn human_rounded(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn a_success_waits_the_interval_within_the_jitter() {
        for unit in [0.0, 0.5, 0.999] {
            let wait = jitter(MIN, unit);
            assert!(wait >= Duration::from_secs(54) && wait < Duration::from_secs(66));
        }
        let mut b = Backoff::new(MIN);
        b.failed_with(None, 0.5);
        let wait = b.succeeded();
        assert_eq!(b.failures, 0);
        assert!(wait >= Duration::from_secs(54) && wait < Duration::from_secs(66));
    }

    /// What the watcher calls after a failed step, random draw and all: never a busy retry.
    #[test]
    fn a_failing_watcher_backs_off_with_the_real_draw() {
        let mut b = Backoff::new(MIN);
        let first = b.failed(None);
        assert!(first >= Duration::from_secs(54), "{first:?}");
        let third = [b.failed(None), b.failed(None)][1];
        assert!(third >= Duration::from_secs(216), "{third:?}");
        let held = b.failed(Some(Duration::from_secs(3600)));
        assert!(held >= Duration::from_secs(3600), "{held:?}");
    }

    #[test]
    fn failures_double_the_wait_up_to_the_cap() {
        let mut b = Backoff::new(MIN);
        let waits: Vec<u64> = (0..6).map(|_| b.failed_with(None, 0.5).as_secs()).collect();
        // 60, 120, 240, 480, then the cap of 8 intervals.
        assert_eq!(waits, [60, 120, 240, 480, 480, 480]);
        assert_eq!(b.failures, 6);
        // A short interval still backs off to at least 30 s; a long one at most 15 min.
        let mut short = Backoff::new(Duration::from_secs(2));
        let last = (0..10)
            .map(|_| short.failed_with(None, 0.5))
            .last()
            .unwrap();
        assert_eq!(last, Duration::from_secs(30));
        let mut long = Backoff::new(Duration::from_secs(3600));
        assert_eq!(
            long.failed_with(None, 0.5),
            Duration::from_secs(3600),
            "never sooner than the interval"
        );
        assert!(Backoff::new(Duration::from_secs(600)).cap() == MAX_BACKOFF);
    }

    #[test]
    fn retry_after_is_honoured_when_longer() {
        let mut b = Backoff::new(Duration::from_secs(2));
        assert_eq!(
            b.failed_with(Some(Duration::from_secs(45)), 0.5),
            Duration::from_secs(45)
        );
        assert_eq!(
            b.failed_with(Some(Duration::from_millis(100)), 0.5),
            Duration::from_secs(4)
        );
    }
}
