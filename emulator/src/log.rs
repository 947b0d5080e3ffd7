//! Request logging to stderr that can never stall request handling: lines go through a
//! bounded channel to a writer thread and are dropped if stderr is not being drained.

use std::io::Write as _;
use std::sync::mpsc::{sync_channel, SyncSender};

#[derive(Clone)]
pub struct Logger(Option<SyncSender<String>>);

impl Logger {
    pub fn stderr() -> Self {
        let (tx, rx) = sync_channel::<String>(4096);
        let spawned = std::thread::Builder::new()
            .name("kv-emulator-log".into())
            .spawn(move || {
                let stderr = std::io::stderr();
                for line in rx {
                    let mut out = stderr.lock();
                    let _ = writeln!(out, "{line}");
                }
            });
        Self(spawned.ok().map(|_| tx))
    }

    /// Callers pass only method, path and status: never bodies, headers or query values.
    pub fn line(&self, line: String) {
        if let Some(tx) = &self.0 {
            let _ = tx.try_send(line);
        }
    }
}
