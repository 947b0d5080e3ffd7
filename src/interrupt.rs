//! SIGTERM, SIGINT and SIGHUP for every command: stop at the next wait, but never inside a
//! step.
//!
//! The handlers are installed once, at start. A signal does not kill the process: the
//! command's future is dropped at its next await (a retry back-off, a `Retry-After`, an HTTP
//! answer, the lock, the watch interval), which closes the lock, zeroizes the values in hand
//! and exits with [`exit::INTERRUPTED`](crate::error::exit::INTERRUPTED). Code between two
//! awaits never yields, so a file write, a state write or an audit line is never cut in half.
//! A step that spans awaits (a rotation or sync transaction, from its intent line to its
//! outcome line) holds a [`Step`]: the signal waits until the step is over, so the step is
//! finished, never torn (its own waits are capped, so this is bounded). SIGHUP is a closed
//! terminal or a supervisor's stop as often as a reload request; there is no configuration to
//! reload that a step does not read afresh, so it stops the run like SIGTERM.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::error::{Error, Result};

/// The signal received (if any) and how many steps are in progress, in one channel so a
/// waiter sees both change.
struct Shared {
    signal: watch::Sender<Option<&'static str>>,
    steps: AtomicUsize,
    step_done: watch::Sender<()>,
    /// The running command watches for signals itself (`sync --watch`) and returns its own
    /// clean stop: the top level must not race it to the same signal.
    stops_itself: AtomicBool,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| Shared {
        signal: watch::channel(None).0,
        steps: AtomicUsize::new(0),
        step_done: watch::channel(()).0,
        stops_itself: AtomicBool::new(false),
    })
}

/// Catch SIGTERM, SIGINT and SIGHUP for the rest of the process. Call once, inside the
/// runtime, before any work.
pub fn install() -> Result<()> {
    let mut handlers = Vec::new();
    for (kind, name) in [
        (SignalKind::terminate(), "SIGTERM"),
        (SignalKind::interrupt(), "SIGINT"),
        (SignalKind::hangup(), "SIGHUP"),
    ] {
        let stream = signal(kind).map_err(|e| Error::Io {
            path: std::path::PathBuf::new(),
            action: "install a signal handler",
            source: e,
        })?;
        handlers.push((stream, name));
    }
    for (mut stream, name) in handlers {
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                // The first signal names the stop; later ones change nothing.
                shared().signal.send_if_modified(|s| {
                    let first = s.is_none();
                    if first {
                        *s = Some(name);
                    }
                    first
                });
            }
        });
    }
    Ok(())
}

/// The signal received so far, if any.
#[cfg(test)]
pub fn requested() -> Option<&'static str> {
    *shared().signal.borrow()
}

/// Resolves with the signal's name once one arrived (at once when one already has).
pub async fn signalled() -> &'static str {
    let mut rx = shared().signal.subscribe();
    loop {
        if let Some(name) = *rx.borrow_and_update() {
            return name;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Resolves once a signal arrived and no step is in progress: the moment the run may be
/// dropped without leaving anything half-done.
pub async fn stop_point() -> &'static str {
    let name = signalled().await;
    let mut done = shared().step_done.subscribe();
    loop {
        done.borrow_and_update();
        if shared().steps.load(Ordering::SeqCst) == 0 {
            return name;
        }
        if done.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Called by a command that stops itself at [`stop_point`] (exit 0): from then on the top
/// level's [`command_stop_point`] never fires, so the two cannot race to the same signal.
pub fn command_stops_itself() {
    shared().stops_itself.store(true, Ordering::SeqCst);
}

/// The top level's stop: [`stop_point`], unless the command stops itself.
pub async fn command_stop_point() -> &'static str {
    let name = stop_point().await;
    if shared().stops_itself.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    name
}

/// A step that must not be cut in half: while one is held, a signal waits for it to end.
#[must_use = "the step lasts as long as the guard"]
pub struct Step(());

/// Begin a step (see [`Step`]).
pub fn step() -> Step {
    shared().steps.fetch_add(1, Ordering::SeqCst);
    Step(())
}

impl Drop for Step {
    fn drop(&mut self) {
        shared().steps.fetch_sub(1, Ordering::SeqCst);
        shared().step_done.send_replace(());
    }
}

/// What a command that was stopped by a signal returns.
pub fn interrupted(signal: &'static str) -> Error {
    Error::Interrupted { signal }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_signal_waits_for_the_step_in_progress() {
        let guard = step();
        shared().signal.send_replace(Some("SIGTERM"));
        assert_eq!(requested(), Some("SIGTERM"));
        let mut stop = Box::pin(stop_point());
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut stop)
                .await
                .is_err(),
            "no stop while a step is in progress"
        );
        drop(guard);
        assert_eq!(stop.await, "SIGTERM");
        shared().signal.send_replace(None);
    }
}
