//! Bounded waits for conditions that send no event: check, and check again a little later,
//! until the condition holds or [`WAIT`] has passed (then an error naming what was awaited).
//! Prefer a real event (a log line, a notification, a counter's watch) where there is one.

use std::future::Future;
use std::time::Duration;

use crate::daemon::WAIT;

/// Time between two checks: short against [`WAIT`], long enough not to spin a loaded CPU.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Calls `check` until it returns `Some`, at most for [`WAIT`]; `what` names the awaited
/// condition in the error.
pub async fn poll<T, F, Fut>(what: &str, check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll_within(WAIT, what, check).await
}

/// [`poll`] with a deadline of `limit`.
pub async fn poll_within<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("{what}: not within {limit:?}");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// [`poll`] for a plain condition.
pub async fn until<F, Fut>(what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll(what, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_value_the_check_yields() {
        let mut calls = 0;
        let got = poll("the third call", || {
            calls += 1;
            let n = calls;
            async move { (n == 3).then_some(n) }
        })
        .await
        .unwrap();
        assert_eq!(got, 3);
    }

    #[tokio::test]
    async fn gives_up_at_the_deadline_naming_what_it_waited_for() {
        let limit = Duration::from_millis(100);
        let err = poll_within(limit, "the moon", || async { None::<()> })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("the moon"), "{err}");
    }
}
