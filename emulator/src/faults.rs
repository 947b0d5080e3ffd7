//! Fault injection (latency, 429, 500, dropped connections, token endpoint outage) and the
//! request statistics served by the admin API. Both are lock-free or lock-briefly, so
//! injected sleeps never hold anything other requests need.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::cli::Opts;

#[derive(Debug, Default)]
pub struct Faults {
    latency_ms: AtomicU64,
    fault_429_every: AtomicU64,
    retry_after: AtomicU64,
    fault_500_every: AtomicU64,
    fault_drop_every: AtomicU64,
    latency_spike_ms: AtomicU64,
    latency_spike_every: AtomicU64,
    token_endpoint_down: AtomicBool,
    /// Counts authenticated data-plane requests; the "every Nth" faults key off it.
    counter: AtomicU64,
}

/// A runtime change from `POST /_emulator/faults`; absent fields stay as they are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultUpdate {
    pub latency_ms: Option<u64>,
    pub fault_429_every: Option<u64>,
    pub retry_after: Option<u64>,
    pub fault_500_every: Option<u64>,
    pub fault_drop_every: Option<u64>,
    pub latency_spike_ms: Option<u64>,
    pub latency_spike_every: Option<u64>,
    pub token_endpoint_down: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    None,
    Throttle { retry_after: u64 },
    ServerError,
    Drop,
}

fn every(n: u64, count: u64) -> bool {
    n > 0 && count.is_multiple_of(n)
}

impl Faults {
    pub fn from_opts(opts: &Opts) -> Self {
        let f = Self::default();
        f.apply(&FaultUpdate {
            latency_ms: Some(opts.latency_ms),
            fault_429_every: Some(opts.fault_429_every),
            retry_after: Some(opts.retry_after),
            fault_500_every: Some(opts.fault_500_every),
            fault_drop_every: Some(opts.fault_drop_every),
            latency_spike_ms: Some(opts.latency_spike_ms),
            latency_spike_every: Some(opts.latency_spike_every),
            token_endpoint_down: Some(opts.token_endpoint_down),
        });
        f
    }

    pub fn apply(&self, u: &FaultUpdate) {
        let set = |field: &AtomicU64, v: Option<u64>| {
            if let Some(v) = v {
                field.store(v, Relaxed);
            }
        };
        set(&self.latency_ms, u.latency_ms);
        set(&self.fault_429_every, u.fault_429_every);
        set(&self.retry_after, u.retry_after);
        set(&self.fault_500_every, u.fault_500_every);
        set(&self.fault_drop_every, u.fault_drop_every);
        set(&self.latency_spike_ms, u.latency_spike_ms);
        set(&self.latency_spike_every, u.latency_spike_every);
        if let Some(down) = u.token_endpoint_down {
            self.token_endpoint_down.store(down, Relaxed);
        }
        // Restart the "every Nth" sequence so a test that sets faults knows which request fails.
        self.counter.store(0, Relaxed);
    }

    pub fn snapshot(&self) -> Value {
        json!({
            "latency_ms": self.latency_ms.load(Relaxed),
            "fault_429_every": self.fault_429_every.load(Relaxed),
            "retry_after": self.retry_after.load(Relaxed),
            "fault_500_every": self.fault_500_every.load(Relaxed),
            "fault_drop_every": self.fault_drop_every.load(Relaxed),
            "latency_spike_ms": self.latency_spike_ms.load(Relaxed),
            "latency_spike_every": self.latency_spike_every.load(Relaxed),
            "token_endpoint_down": self.token_endpoint_down.load(Relaxed),
        })
    }

    /// Latency for requests that never reach the fault sequence (401 challenges).
    pub fn base_latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(Relaxed))
    }

    pub fn token_endpoint_down(&self) -> bool {
        self.token_endpoint_down.load(Relaxed)
    }

    /// Numbers this request and returns the delay to apply and the fault (if any) to inject.
    pub fn next(&self) -> (Duration, Injected) {
        let n = self.counter.fetch_add(1, Relaxed) + 1;
        let mut delay = self.latency_ms.load(Relaxed);
        if every(self.latency_spike_every.load(Relaxed), n) {
            delay += self.latency_spike_ms.load(Relaxed);
        }
        let fault = if every(self.fault_drop_every.load(Relaxed), n) {
            Injected::Drop
        } else if every(self.fault_429_every.load(Relaxed), n) {
            Injected::Throttle {
                retry_after: self.retry_after.load(Relaxed),
            }
        } else if every(self.fault_500_every.load(Relaxed), n) {
            Injected::ServerError
        } else {
            Injected::None
        };
        (Duration::from_millis(delay), fault)
    }
}

#[derive(Debug, Default)]
struct Counts {
    by_operation: BTreeMap<&'static str, u64>,
    gets_by_secret: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    unauthenticated: AtomicU64,
    faults_injected: AtomicU64,
    tokens_issued: AtomicU64,
    counts: Mutex<Counts>,
}

impl Stats {
    pub fn request(&self) {
        self.requests.fetch_add(1, Relaxed);
    }

    pub fn unauthenticated(&self) {
        self.unauthenticated.fetch_add(1, Relaxed);
    }

    pub fn fault(&self) {
        self.faults_injected.fetch_add(1, Relaxed);
    }

    pub fn token_issued(&self) {
        self.tokens_issued.fetch_add(1, Relaxed);
    }

    pub fn operation(&self, op: &'static str, get_of: Option<&str>) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *c.by_operation.entry(op).or_default() += 1;
        if let Some(name) = get_of {
            *c.gets_by_secret.entry(name.to_string()).or_default() += 1;
        }
    }

    pub fn reset(&self) {
        self.requests.store(0, Relaxed);
        self.unauthenticated.store(0, Relaxed);
        self.faults_injected.store(0, Relaxed);
        self.tokens_issued.store(0, Relaxed);
        *self.counts.lock().unwrap_or_else(|e| e.into_inner()) = Counts::default();
    }

    pub fn snapshot(&self) -> Value {
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        json!({
            "requests": self.requests.load(Relaxed),
            "unauthenticated": self.unauthenticated.load(Relaxed),
            "by_operation": c.by_operation,
            "gets_by_secret": c.gets_by_secret,
            "faults_injected": self.faults_injected.load(Relaxed),
            "tokens_issued": self.tokens_issued.load(Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nth_request_gets_the_fault() {
        let f = Faults::default();
        f.apply(&FaultUpdate {
            fault_429_every: Some(3),
            retry_after: Some(2),
            fault_drop_every: Some(5),
            latency_ms: Some(7),
            latency_spike_ms: Some(100),
            latency_spike_every: Some(2),
            ..Default::default()
        });
        let seen: Vec<_> = (0..6).map(|_| f.next()).collect();
        assert_eq!(seen[0], (Duration::from_millis(7), Injected::None));
        assert_eq!(seen[1], (Duration::from_millis(107), Injected::None));
        assert_eq!(seen[2].1, Injected::Throttle { retry_after: 2 });
        assert_eq!(seen[4].1, Injected::Drop);
        assert_eq!(seen[5].1, Injected::Throttle { retry_after: 2 });
    }

    #[test]
    fn unknown_fault_fields_are_rejected() {
        assert!(serde_json::from_str::<FaultUpdate>(r#"{"fault_429_evry":1}"#).is_err());
        assert!(serde_json::from_str::<FaultUpdate>(r#"{"token_endpoint_down":true}"#).is_ok());
    }
}
