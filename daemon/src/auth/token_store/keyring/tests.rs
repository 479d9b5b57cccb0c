//! Tests of the keyring store against the real kernel keyutils keyring.
//!
//! They use the test process's session keyring (in CI: whatever the runner gives, or a fresh
//! one under `keyctl session`), with a unique profile per test, removed at the end. Where the
//! kernel keyring is unavailable they fail, unless MCPPROXY_TESTS_SKIP_MISSING=1 (outside
//! CI=true) asks for a skip, with the reason printed. The `keyctl` tool, when present, checks from outside the process that
//! the key really is in the kernel.

use std::process::Command;

use ring::rand::{SecureRandom, SystemRandom};

use super::*;
use crate::auth::token_store::key::hex;
use crate::auth::token_store::record::tests::{assert_same, sample};

/// Whether a missing keyring or `keyctl` fails the test (the tests crate's `prereq` rule):
/// always, unless MCPPROXY_TESTS_SKIP_MISSING=1 asks for a skip outside CI=true.
fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
        || std::env::var("MCPPROXY_TESTS_SKIP_MISSING").as_deref() != Ok("1")
}

fn keyutils_store(dir: &std::path::Path) -> Option<KeyringStore> {
    match KeyringStore::keyutils(dir.to_path_buf()) {
        Ok(store) => Some(store),
        Err(e) if in_ci() => {
            panic!("the kernel keyring is unavailable: {e} (MCPPROXY_TESTS_SKIP_MISSING=1 skips)")
        }
        Err(e) => {
            eprintln!("skipping: the kernel keyring is unavailable here: {e}");
            None
        }
    }
}

/// A profile name no other test or process uses.
fn unique_profile() -> String {
    let mut bytes = [0u8; 6];
    SystemRandom::new().fill(&mut bytes).unwrap();
    format!("test-{}-{}", std::process::id(), hex(&bytes))
}

/// Whether `keyctl` finds the key of `profile` in the session keyring; `None` when the tool
/// is missing (an error under CI=true).
fn keyctl_finds(profile: &str) -> Option<bool> {
    let description = format!("keyring:{profile}@{SERVICE}");
    match Command::new("keyctl")
        .args(["search", "@s", "user", &description])
        .output()
    {
        Ok(out) => Some(out.status.success()),
        Err(e) if in_ci() => panic!("keyctl is missing: {e}; install it with `apt-get install keyutils` (or `make test-deps`)"),
        Err(e) => {
            eprintln!("not cross-checking with keyctl: {e}");
            None
        }
    }
}

/// Deletes the test's key even when an assertion fails.
struct Cleanup<'a>(&'a KeyringStore, &'a str);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.delete(self.1);
    }
}

#[test]
fn keyutils_round_trip_overwrite_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let Some(store) = keyutils_store(dir.path()) else {
        return;
    };
    let profile = unique_profile();
    let _cleanup = Cleanup(&store, &profile);

    let info = store.info();
    assert_eq!(store.backend(), Backend::Keyutils);
    assert!(!info.survives_reboot);
    assert_eq!(info.name, "keyring (kernel keyutils, lost at reboot)");

    assert!(store.load(&profile).unwrap().is_none());
    store.save(&profile, &sample()).unwrap();
    assert_same(&store.load(&profile).unwrap().unwrap(), &sample());
    if let Some(found) = keyctl_finds(&profile) {
        assert!(found, "keyctl does not see the saved key");
    }

    let mut rotated = sample();
    rotated.refresh_token = Some("rt-rotated".into());
    store.save(&profile, &rotated).unwrap();
    assert_same(&store.load(&profile).unwrap().unwrap(), &rotated);

    // A second store instance (as after a daemon restart) reads the same key.
    let again = keyutils_store(dir.path()).unwrap();
    assert_same(&again.load(&profile).unwrap().unwrap(), &rotated);

    store.delete(&profile).unwrap();
    assert!(store.load(&profile).unwrap().is_none());
    if let Some(found) = keyctl_finds(&profile) {
        assert!(!found, "keyctl still sees the deleted key");
    }
    store.delete(&profile).unwrap();
}

#[test]
fn keyutils_corrupt_and_newer_values_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let Some(store) = keyutils_store(dir.path()) else {
        return;
    };
    let profile = unique_profile();
    let _cleanup = Cleanup(&store, &profile);
    let entry = store.entry(&profile).unwrap();

    entry
        .set_secret(br#"{"version":1,"access_token":"at-LEAK"}"#)
        .unwrap();
    let err = store.load(&profile).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("`{profile}`")) && !msg.contains("LEAK"),
        "{msg}"
    );

    entry.set_secret(br#"{"version":2}"#).unwrap();
    let err = store.load(&profile).unwrap_err();
    assert!(err.to_string().contains("newer mcpproxyd"), "{err}");
}

#[test]
fn keyring_lock_files_live_in_the_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let Some(store) = keyutils_store(dir.path()) else {
        return;
    };
    let held = store.lock("work").unwrap();
    assert!(store.try_lock("work").unwrap().is_none());
    assert!(dir.path().join("work.lock").exists());
    drop(held);
    assert!(store.try_lock("work").unwrap().is_some());
}

#[test]
fn keyring_errors_keep_stored_bytes_out_of_messages() {
    let err = keyring_error(
        Backend::SecretService,
        KeyringError::BadEncoding(b"at-LEAK\xff".to_vec()),
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with("keyring (Secret Service): ") && !msg.contains("LEAK"),
        "{msg}"
    );
    let err = keyring_error(
        Backend::Keyutils,
        KeyringError::BadDataFormat(b"at-LEAK".to_vec(), "bad".into()),
    );
    assert!(!err.to_string().contains("LEAK"), "{err}");
}

#[test]
fn secret_service_is_refused_quickly_without_a_session_bus() {
    // Meaningful only where no session bus is configured (CI, system services).
    if session_bus_address().is_some() {
        eprintln!("skipping: this environment has a session bus");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    let err = KeyringStore::secret_service(dir.path().to_path_buf())
        .err()
        .unwrap();
    assert!(
        matches!(err, StoreError::SecretServiceUnavailable(_)),
        "{err}"
    );
    assert!(start.elapsed() < PROBE_TIMEOUT);
}
