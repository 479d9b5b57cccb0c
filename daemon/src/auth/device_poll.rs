//! When a device login polls the token endpoint (RFC 8628 §3.5): `interval` after the device
//! authorization and after each answer, 5 s longer after every `slow_down`, backing off on
//! network trouble, never past the device code's deadline, and not at all once cancelled.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::auth::oauth::device::Poll;
use crate::auth::oauth::OAuthError;

/// What RFC 8628 §3.5 adds to the interval on `slow_down`.
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// The shortest wait between polls: a server that says `interval: 0` gets one poll a second,
/// not a busy loop.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The longest wait after network trouble (exponential backoff, RFC 8628 §3.5).
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The interval in force and the backoff after trouble; pure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    interval: Duration,
    /// Failed polls in a row (network trouble, 5xx).
    troubles: u32,
}

impl Schedule {
    /// The server's interval (at least [`MIN_INTERVAL`]).
    pub fn new(interval: Duration) -> Schedule {
        Schedule {
            interval: interval.max(MIN_INTERVAL),
            troubles: 0,
        }
    }

    /// The interval the server asks for now.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How long to wait before the next poll.
    pub fn next_wait(&self) -> Duration {
        let factor = 1u32 << self.troubles.min(6);
        (self.interval * factor).min(MAX_BACKOFF.max(self.interval))
    }

    /// `authorization_pending`: the same interval again.
    pub fn pending(&mut self) {
        self.troubles = 0;
    }

    /// `slow_down`: the interval grows by 5 s for this and every later poll.
    pub fn slow_down(&mut self) {
        self.interval += SLOW_DOWN_STEP;
        self.troubles = 0;
    }

    /// No answer, or a 5xx: wait twice as long as last time.
    pub fn trouble(&mut self) {
        self.troubles = self.troubles.saturating_add(1);
    }
}

/// How the polling ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended<T> {
    Tokens(T),
    /// The user refused (`access_denied`), with the server's description.
    Denied(Option<String>),
    /// `expired_token`, or the deadline came first.
    Expired,
    /// The server refused for another reason, or answered nonsense.
    Failed(String),
    Cancelled,
}

/// Polls with `poll` on `schedule` until an answer ends the login, `deadline` passes or
/// `cancel` fires; `trouble` hears of each transient failure (to log it).
pub async fn run<T, F, Fut>(
    mut schedule: Schedule,
    deadline: Instant,
    cancel: &CancellationToken,
    mut poll: F,
    mut trouble: impl FnMut(&str),
) -> Ended<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, OAuthError>>,
{
    loop {
        let at = Instant::now() + schedule.next_wait();
        if at > deadline {
            return Ended::Expired;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            _ = cancel.cancelled() => return Ended::Cancelled,
        }
        let answer = tokio::select! {
            answer = poll() => answer,
            _ = cancel.cancelled() => return Ended::Cancelled,
        };
        match answer {
            Ok(Poll::Tokens(t)) => return Ended::Tokens(t),
            Ok(Poll::Pending) => schedule.pending(),
            Ok(Poll::SlowDown) => schedule.slow_down(),
            Ok(Poll::Denied(why)) => return Ended::Denied(why),
            Ok(Poll::Expired) => return Ended::Expired,
            Err(OAuthError::Transient(why)) => {
                trouble(&why);
                schedule.trouble();
            }
            Err(e) => return Ended::Failed(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn slow_down_adds_five_seconds_for_good() {
        let mut s = Schedule::new(Duration::from_secs(1));
        assert_eq!(s.next_wait(), Duration::from_secs(1));
        s.slow_down();
        assert_eq!(s.next_wait(), Duration::from_secs(6));
        s.pending();
        assert_eq!(s.next_wait(), Duration::from_secs(6));
        s.slow_down();
        assert_eq!(s.interval(), Duration::from_secs(11));
    }

    #[test]
    fn trouble_backs_off_up_to_a_minute_and_an_answer_resets_it() {
        let mut s = Schedule::new(Duration::from_secs(5));
        s.trouble();
        assert_eq!(s.next_wait(), Duration::from_secs(10));
        for _ in 0..20 {
            s.trouble();
        }
        assert_eq!(s.next_wait(), MAX_BACKOFF);
        s.pending();
        assert_eq!(s.next_wait(), Duration::from_secs(5));
        // An interval beyond the cap is still honoured.
        let mut long = Schedule::new(Duration::from_secs(90));
        long.trouble();
        assert_eq!(long.next_wait(), Duration::from_secs(90));
    }

    #[test]
    fn a_zero_interval_is_one_second() {
        assert_eq!(Schedule::new(Duration::ZERO).next_wait(), MIN_INTERVAL);
    }

    /// Runs `answers` in order; returns how it ended and when (seconds after the start) each
    /// poll came.
    async fn script(
        interval: u64,
        expires_in: u64,
        answers: Vec<Result<Poll<&'static str>, OAuthError>>,
    ) -> (Ended<&'static str>, Vec<u64>) {
        let start = Instant::now();
        let times = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(answers.into_iter()));
        let seen = times.clone();
        let ended = run(
            Schedule::new(Duration::from_secs(interval)),
            start + Duration::from_secs(expires_in),
            &CancellationToken::new(),
            move || {
                seen.lock().unwrap().push(start.elapsed().as_secs());
                let next = answers.lock().unwrap().next();
                async move { next.unwrap_or(Ok(Poll::Pending)) }
            },
            |_| {},
        )
        .await;
        let times = times.lock().unwrap().clone();
        (ended, times)
    }

    #[tokio::test(start_paused = true)]
    async fn polls_every_interval_and_slower_after_slow_down() {
        let (ended, times) = script(
            1,
            600,
            vec![
                Ok(Poll::Pending),
                Ok(Poll::SlowDown),
                Ok(Poll::Pending),
                Ok(Poll::Tokens("t")),
            ],
        )
        .await;
        assert_eq!(ended, Ended::Tokens("t"));
        // The first poll waits an interval too; after slow_down every gap is 6 s.
        assert_eq!(times, vec![1, 2, 8, 14]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_ends_polling_without_a_poll_past_it() {
        let (ended, times) = script(2, 7, Vec::new()).await;
        assert_eq!(ended, Ended::Expired);
        assert_eq!(times, vec![2, 4, 6]);
    }

    #[tokio::test(start_paused = true)]
    async fn denial_expiry_and_refusals_end_at_once() {
        let (ended, times) = script(1, 60, vec![Ok(Poll::Denied(Some("no".into())))]).await;
        assert_eq!(ended, Ended::Denied(Some("no".into())));
        assert_eq!(times, vec![1]);
        let (ended, _) = script(1, 60, vec![Ok(Poll::Pending), Ok(Poll::Expired)]).await;
        assert_eq!(ended, Ended::Expired);
        let refused = OAuthError::Rejected {
            code: "invalid_client".into(),
            description: None,
        };
        let (ended, _) = script(1, 60, vec![Err(refused)]).await;
        assert!(matches!(ended, Ended::Failed(m) if m.contains("invalid_client")));
    }

    #[tokio::test(start_paused = true)]
    async fn network_trouble_backs_off_then_polling_goes_on() {
        let down = || Err(OAuthError::Transient("connection failed".into()));
        let (ended, times) = script(1, 600, vec![down(), down(), Ok(Poll::Tokens("t"))]).await;
        assert_eq!(ended, Ended::Tokens("t"));
        assert_eq!(times, vec![1, 3, 7]);
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_stops_before_the_next_poll() {
        let cancel = CancellationToken::new();
        let polls = Arc::new(Mutex::new(0));
        let counted = polls.clone();
        let stopper = cancel.clone();
        let ended: Ended<()> = run(
            Schedule::new(Duration::from_secs(1)),
            Instant::now() + Duration::from_secs(600),
            &cancel,
            move || {
                *counted.lock().unwrap() += 1;
                // The user presses Ctrl-C while the second poll's answer is pending.
                if *counted.lock().unwrap() == 2 {
                    stopper.cancel();
                }
                async { Ok(Poll::Pending) }
            },
            |_| {},
        )
        .await;
        assert_eq!(ended, Ended::Cancelled);
        assert_eq!(*polls.lock().unwrap(), 2);
    }
}
