//! The refresher and the single-flight refresh, on a paused clock: what happens when, without
//! waiting for it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::advance;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::auth::errors::{RefreshError, TokenError};
use crate::auth::oauth::OAuthError;
use crate::auth::slot::Deps;
use crate::auth::token_store::record::tests::sample;
use crate::auth::token_store::TokenRecord;
use crate::clock::Clock;
use crate::config::{AuthProfile, OAuthProfile, RefreshMargin, Resource};
use crate::control::metrics::Metrics;

const START: u64 = 1_800_000_000;

fn slot(clock: &Clock, margin: RefreshMargin) -> Arc<Slot> {
    let profile = AuthProfile::OAuth(OAuthProfile {
        issuer: None,
        authorization_endpoint: None,
        token_endpoint: None,
        revocation_endpoint: None,
        client_id: None,
        client_secret: None,
        private_key: None,
        grant: crate::config::GrantType::AuthorizationCode,
        scopes: vec![],
        resource: Resource::Auto,
        refresh_margin: margin,
        ca_file: None,
    });
    let deps = Deps {
        store: None,
        metrics: Arc::new(Metrics::default()),
        clock: clock.clone(),
    };
    let http = crate::http_client::build(&Default::default()).unwrap();
    Arc::new(Slot::new("p", profile, http, deps))
}

fn token(obtained: u64, lifetime: u64) -> TokenRecord {
    TokenRecord {
        obtained_at: obtained,
        access_expires_at: Some(obtained + lifetime),
        ..sample()
    }
}

/// Lets the spawned tasks run until they wait again (time stays paused).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// A refresher whose refresh is counted and answered by `answer(slot, attempt)`.
fn spawn_refresher(
    slot: &Arc<Slot>,
    answer: impl Fn(&Slot, u32) + Send + Sync + 'static,
) -> (Arc<AtomicU32>, CancellationToken) {
    let calls = Arc::new(AtomicU32::new(0));
    let stop = CancellationToken::new();
    let (s, c, st) = (slot.clone(), calls.clone(), stop.clone());
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        run_with(&s.clone(), st, move |seen| {
            let (s, c, answer) = (s.clone(), c.clone(), answer.clone());
            async move {
                let _ = s
                    .single_flight(seen, || async {
                        let attempt = c.fetch_add(1, Ordering::SeqCst) + 1;
                        answer(&s, attempt);
                        Ok(())
                    })
                    .await;
            }
        })
        .await
    });
    (calls, stop)
}

fn renew(slot: &Slot, _attempt: u32) {
    let now = slot.clock().now();
    slot.set_valid(token(now, 3_600));
}

#[tokio::test(start_paused = true)]
async fn refreshes_at_the_margin_before_expiry_and_not_before() {
    let clock = Clock::tokio_at(START);
    let slot = slot(&clock, RefreshMargin::Fixed(Duration::from_secs(600)));
    slot.set_valid(token(START, 3_600));
    let (calls, stop) = spawn_refresher(&slot, renew);
    settle().await;
    // The plan is 600 s before expiry, up to 61 s earlier for jitter.
    for _ in 0..(3_000 - 61) / 60 {
        advance(Duration::from_secs(60)).await;
        settle().await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "refreshed too early");
    for _ in 0..3 {
        advance(Duration::from_secs(60)).await;
        settle().await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The new token is planned afresh: nothing more for a while.
    advance(Duration::from_secs(60)).await;
    settle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_is_retried_with_growing_backoff_while_the_token_lasts() {
    let clock = Clock::tokio_at(START);
    let slot = slot(&clock, RefreshMargin::Auto);
    // Already due: expires in 100 s, inside the margin.
    slot.set_valid(token(START - 3_500, 3_600));
    let (calls, stop) = spawn_refresher(&slot, |s, attempt| {
        if attempt < 4 {
            let e = RefreshError::OAuth(OAuthError::Transient("connection refused".into()));
            s.failed(e);
        } else {
            renew(s, attempt)
        }
    });
    settle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        slot.due().1,
        Phase::Valid,
        "a transient failure keeps the token"
    );
    // About 1 s, then 2 s, then 4 s (each with up to a quarter more for jitter).
    for (wait, expected) in [(2, 2), (3, 3), (6, 4)] {
        advance(Duration::from_secs(wait)).await;
        settle().await;
        assert_eq!(calls.load(Ordering::SeqCst), expected, "after {wait}s more");
    }
    advance(Duration::from_secs(60)).await;
    settle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 4, "renewed: no more retries");
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_refused_grant_stops_the_refresher_until_a_new_login() {
    let clock = Clock::tokio_at(START);
    let slot = slot(&clock, RefreshMargin::Auto);
    slot.set_valid(token(START - 3_500, 3_600));
    let (calls, stop) = spawn_refresher(&slot, |s, _| {
        s.failed(RefreshError::OAuth(OAuthError::NoRefreshToken));
    });
    settle().await;
    assert_eq!(slot.due().1, Phase::NeedsLogin);
    advance(Duration::from_secs(3_600)).await;
    settle().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // A login wakes the refresher and plans the next refresh.
    slot.set_valid(token(clock.now(), 3_600));
    settle().await;
    assert!(slot.due().0.is_some());
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn after_a_suspend_the_wall_clock_wins_over_the_timer() {
    let clock = Clock::tokio_at(START);
    let slot = slot(&clock, RefreshMargin::Auto);
    slot.set_valid(token(START, 3_600));
    let (calls, stop) = spawn_refresher(&slot, renew);
    settle().await;
    // The machine sleeps for two hours: the wall clock jumps, timers do not move.
    clock.jump(7_200);
    advance(CLOCK_CHECK).await;
    settle().await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "not refreshed within one clock check"
    );
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn concurrent_refreshes_of_one_generation_are_one_flight() {
    let clock = Clock::tokio_at(START);
    let slot = slot(&clock, RefreshMargin::Auto);
    slot.set_valid(token(START - 3_600, 3_600));
    let seen = slot.due().2;
    let calls = Arc::new(AtomicU32::new(0));
    let mut waiters = Vec::new();
    for _ in 0..8 {
        let (slot, calls) = (slot.clone(), calls.clone());
        waiters.push(tokio::spawn(async move {
            slot.single_flight(seen, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                // The exchange takes a while; everyone else waits for it.
                tokio::time::sleep(Duration::from_secs(2)).await;
                renew(&slot, 1);
                Ok(())
            })
            .await
        }));
    }
    for w in waiters {
        w.await.unwrap().unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(slot.due().2, seen + 1);
    // A caller that saw the new generation gets its own flight.
    let again = slot.single_flight(seen + 1, || async { Ok(()) }).await;
    assert!(again.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_refresh_without_a_store_fails_clearly_and_keeps_the_phase() {
    let clock = Clock::tokio_at(START);
    let slot = slot(&clock, RefreshMargin::Auto);
    let e = slot.refresh(0).await.unwrap_err();
    assert!(
        matches!(e, RefreshError::Token(TokenError::NotLoggedIn)),
        "{e}"
    );
    slot.set_valid(token(START, 3_600));
    let e = slot.refresh(1).await.unwrap_err();
    assert_eq!(e.to_string(), "no token store is open");
    assert!(!e.needs_login());
    assert_eq!(slot.due().1, Phase::Valid);
}

// === machine profiles (client credentials) ===

fn machine_slot(clock: &Clock) -> Arc<Slot> {
    let s = slot(clock, RefreshMargin::Auto);
    if let AuthProfile::OAuth(o) = &mut *crate::auth::slot::lock(&s.profile) {
        o.grant = crate::config::GrantType::ClientCredentials;
    }
    s
}

fn refused_client() -> RefreshError {
    RefreshError::OAuth(OAuthError::Rejected {
        code: "invalid_client".into(),
        description: Some("client authentication failed".into()),
    })
}

#[tokio::test(start_paused = true)]
async fn a_failing_machine_profile_backs_off_exponentially_up_to_the_cap() {
    let clock = Clock::tokio_at(START);
    let slot = machine_slot(&clock);
    let times = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = times.clone();
    // The first attempt comes from a request; every one is refused.
    let (calls, stop) = spawn_refresher(&slot, move |s, _| {
        seen.lock().unwrap().push(s.clock().now());
        s.failed(refused_client());
    });
    settle().await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "nothing to do before a request"
    );
    slot.single_flight(0, || async {
        times.lock().unwrap().push(clock.now());
        Err(slot.failed(refused_client()))
    })
    .await
    .unwrap_err();
    assert_eq!(slot.due().1, Phase::LoggedOut, "no login to wait for");
    for _ in 0..3_600 {
        advance(Duration::from_secs(1)).await;
        settle().await;
    }
    stop.cancel();
    let times = times.lock().unwrap().clone();
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // Each wait at least the backoff (1 s, 2 s, 4 s, ... plus the second it started in),
    // at most a quarter more for jitter, capped at five minutes.
    for (k, gap) in gaps.iter().enumerate() {
        let base = (1u64 << k).min(crate::auth::schedule::MAX_BACKOFF.as_secs());
        let most = (base + base / 4 + 1).min(crate::auth::schedule::MAX_BACKOFF.as_secs()) + 1;
        assert!(
            (base + 1..=most).contains(gap),
            "wait {k} was {gap}s: {gaps:?}"
        );
    }
    assert!(
        (15..=22).contains(&times.len()),
        "{} attempts in an hour: {gaps:?}",
        times.len()
    );
    assert!(slot.read(|l| l.last_error().unwrap().contains("invalid_client")));
}

#[tokio::test(start_paused = true)]
async fn requests_during_the_backoff_get_an_error_at_once_and_send_nothing() {
    let clock = Clock::tokio_at(START);
    let slot = machine_slot(&clock);
    slot.failed(refused_client());
    let generation = slot.due().2;
    // No store in this test: getting past the backoff shows as "no token store".
    let e = slot.refresh(generation).await.unwrap_err();
    assert!(
        matches!(
            e,
            RefreshError::Token(TokenError::BackingOff { retry_in: 2, .. })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("invalid_client"), "{e}");
    assert!(e.to_string().contains("next attempt in 2s"), "{e}");
    assert!(!e.needs_login());
    advance(Duration::from_secs(2)).await;
    let e = slot.refresh(generation).await.unwrap_err();
    assert!(matches!(e, RefreshError::Token(TokenError::NoStore)), "{e}");
}
