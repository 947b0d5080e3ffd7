//! The vault's retry policy: bounded waits, one budget per command, and a refusal instead of
//! an hour-long sleep.
//!
//! azure_core's own exponential policy sleeps `max(Retry-After, back-off)` before it looks at
//! its elapsed-time limit, so a 429 with `Retry-After: 3600` held `load` for an hour. Here
//! every wait is capped at [`MAX_RETRY_WAIT`], all the waits of one command (one `sync
//! --watch` step) share [`COMMAND_RETRY_BUDGET`], and an answer that asks for more than the
//! budget has left is refused at once ([`ThrottleRefused`]), naming the status and the wait
//! it would not honour. Every wait is an ordinary await, so SIGTERM/SIGINT end it (see
//! `crate::interrupt`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::headers::{RETRY_AFTER, RETRY_AFTER_MS, X_MS_RETRY_AFTER_MS};
use azure_core::http::policies::{
    get_retry_after, Policy, PolicyResult, RetryHeaders, RetryPolicy,
};
use azure_core::http::{Context, Request, StatusCode};

/// The longest single wait between two attempts, whatever the vault's `Retry-After` says.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);
/// The most one command (or one `sync --watch` step) spends waiting between attempts, over
/// every request it makes.
pub const COMMAND_RETRY_BUDGET: Duration = Duration::from_secs(5 * 60);

/// What is left of [`COMMAND_RETRY_BUDGET`], shared by every request of one store.
#[derive(Debug)]
pub(super) struct RetryBudget {
    total: Duration,
    spent_ms: AtomicU64,
}

impl RetryBudget {
    pub(super) fn new(total: Duration) -> Arc<Self> {
        Arc::new(Self {
            total,
            spent_ms: AtomicU64::new(0),
        })
    }

    pub(super) fn total(&self) -> Duration {
        self.total
    }

    pub(super) fn remaining(&self) -> Duration {
        self.total
            .saturating_sub(Duration::from_millis(self.spent_ms.load(Ordering::Relaxed)))
    }

    fn spend(&self, wait: Duration) {
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        self.spent_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// A new command (a new `sync --watch` step) starts with the whole budget.
    pub(super) fn reset(&self) {
        self.spent_ms.store(0, Ordering::Relaxed);
    }
}

/// The headers azure_core reads a wait from, in its order.
fn retry_headers() -> RetryHeaders {
    RetryHeaders {
        retry_headers: vec![X_MS_RETRY_AFTER_MS, RETRY_AFTER_MS, RETRY_AFTER],
    }
}

/// Exponential back-off (doubling from `initial_delay`, plus up to 255 ms of jitter, at most
/// `max_delay`), at least the `Retry-After` asked for, never more than [`MAX_RETRY_WAIT`] or
/// what the budget has left.
#[derive(Debug)]
pub(super) struct VaultRetry {
    pub budget: Arc<RetryBudget>,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    pub max_retries: u32,
    /// One call's limit on the time since its first attempt.
    pub per_call: Duration,
    headers: RetryHeaders,
}

impl VaultRetry {
    pub(super) fn new(
        budget: Arc<RetryBudget>,
        initial_delay: Duration,
        max_delay: Duration,
        max_retries: u32,
        per_call: Duration,
    ) -> Self {
        Self {
            budget,
            initial_delay,
            max_delay,
            max_retries,
            per_call,
            headers: retry_headers(),
        }
    }
}

/// The wait before the next attempt: the back-off or the server's ask, whichever is longer,
/// capped by [`MAX_RETRY_WAIT`] and by what is left of the budget.
pub(super) fn next_wait(
    backoff: Duration,
    retry_after: Option<Duration>,
    remaining: Duration,
) -> Duration {
    backoff
        .max(retry_after.unwrap_or_default())
        .min(MAX_RETRY_WAIT)
        .min(remaining)
}

#[async_trait]
impl RetryPolicy for VaultRetry {
    fn is_expired(&self, since_start: azure_core::time::Duration, retry_count: u32) -> bool {
        let since_start = Duration::try_from(since_start).unwrap_or_default();
        retry_count >= self.max_retries
            || since_start >= self.per_call
            || self.budget.remaining().is_zero()
    }

    fn retry_headers(&self) -> Option<&RetryHeaders> {
        Some(&self.headers)
    }

    fn retry_status_codes(&self) -> &[StatusCode] {
        // Empty: azure_core's defaults (408, 429, 500, 502, 503, 504).
        &[]
    }

    fn sleep_duration(&self, retry_count: u32) -> azure_core::time::Duration {
        let doubled = self
            .initial_delay
            .saturating_mul(2u32.saturating_pow(retry_count.min(16)));
        let jittered = doubled + Duration::from_millis(u64::from(rand::random::<u8>()));
        to_sdk(jittered.min(self.max_delay))
    }

    async fn wait(&self, retry_count: u32, retry_after: Option<azure_core::time::Duration>) {
        let backoff = Duration::try_from(self.sleep_duration(retry_count)).unwrap_or_default();
        let asked = retry_after.map(|d| Duration::try_from(d).unwrap_or_default());
        let wait = next_wait(backoff, asked, self.budget.remaining());
        self.budget.spend(wait);
        tokio::time::sleep(wait).await;
    }
}

fn to_sdk(d: Duration) -> azure_core::time::Duration {
    azure_core::time::Duration::milliseconds(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A 429 or 503 whose `Retry-After` is longer than what the budget has left: not waited out.
#[derive(Debug)]
pub(super) struct ThrottleRefused {
    pub status: u16,
    pub retry_after: Duration,
    pub left: Duration,
    pub budget: Duration,
}

impl fmt::Display for ThrottleRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = StatusCode::from(self.status).canonical_reason();
        write!(
            f,
            "Key Vault answered HTTP {} {reason} with Retry-After {}s, more than the {}s left of \
             this command's retry budget ({}s in all, at most {}s per wait); not waiting that \
             long: try again later, or lower COMPOSE_SECRETS_KV_CONCURRENCY",
            self.status,
            self.retry_after.as_secs(),
            self.left.as_secs(),
            self.budget.as_secs(),
            MAX_RETRY_WAIT.as_secs()
        )
    }
}

impl std::error::Error for ThrottleRefused {}

/// Per try, after the vault's authorizer: turns a throttling answer the budget cannot wait
/// out into a [`ThrottleRefused`] error, which azure_core does not retry.
#[derive(Debug)]
pub(super) struct ThrottleGate {
    budget: Arc<RetryBudget>,
    headers: RetryHeaders,
}

impl ThrottleGate {
    pub(super) fn new(budget: Arc<RetryBudget>) -> Self {
        Self {
            budget,
            headers: retry_headers(),
        }
    }
}

#[async_trait]
impl Policy for ThrottleGate {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let response = next[0].send(ctx, request, &next[1..]).await?;
        let status = response.status();
        if matches!(
            status,
            StatusCode::TooManyRequests | StatusCode::ServiceUnavailable
        ) {
            let asked = get_retry_after(
                response.headers(),
                azure_core::time::OffsetDateTime::now_utc,
                &self.headers.retry_headers,
            )
            .map(|d| Duration::try_from(d).unwrap_or_default());
            let left = self.budget.remaining();
            if let Some(asked) = asked.filter(|asked| *asked > left) {
                return Err(azure_core::Error::new(
                    ErrorKind::Other,
                    ThrottleRefused {
                        status: u16::from(status),
                        retry_after: asked,
                        left,
                        budget: self.budget.total(),
                    },
                ));
            }
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn a_wait_is_the_longer_of_back_off_and_retry_after_within_both_caps() {
        assert_eq!(next_wait(S(1), None, S(300)), S(1));
        assert_eq!(next_wait(S(1), Some(S(7)), S(300)), S(7));
        assert_eq!(next_wait(S(1), Some(S(3600)), S(300)), MAX_RETRY_WAIT);
        assert_eq!(next_wait(S(1), Some(S(45)), S(10)), S(10));
    }

    #[test]
    fn the_budget_is_shared_spent_and_reset() {
        let budget = RetryBudget::new(S(300));
        budget.spend(S(60));
        budget.spend(S(200));
        assert_eq!(budget.remaining(), S(40));
        budget.spend(S(100));
        assert_eq!(budget.remaining(), Duration::ZERO);
        let policy = VaultRetry::new(budget.clone(), S(1), S(8), 5, S(30));
        assert!(policy.is_expired(azure_core::time::Duration::ZERO, 0));
        budget.reset();
        assert!(!policy.is_expired(azure_core::time::Duration::ZERO, 0));
        assert!(policy.is_expired(azure_core::time::Duration::seconds(30), 0));
        assert!(policy.is_expired(azure_core::time::Duration::ZERO, 5));
    }

    #[test]
    fn the_refusal_names_the_status_and_the_wait_it_refused() {
        let text = ThrottleRefused {
            status: 429,
            retry_after: S(3600),
            left: S(300),
            budget: COMMAND_RETRY_BUDGET,
        }
        .to_string();
        assert!(text.contains("HTTP 429 Too Many Requests"), "{text}");
        assert!(text.contains("Retry-After 3600s"), "{text}");
        assert!(text.contains("300s left"), "{text}");
    }
}
