//! Tests of the file store on a real file system.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;
use crate::auth::token_store::record::tests::{assert_same, sample, ACCESS, REFRESH};

fn store(dir: &Path) -> FileStore {
    FileStore::new(dir.to_path_buf(), None).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o777
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn save_then_load_round_trips_and_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let s = store(&dir);
    assert!(s.load("work").unwrap().is_none());
    s.save("work", &sample()).unwrap();
    assert_same(&s.load("work").unwrap().unwrap(), &sample());
    drop(s);
    assert_same(&store(&dir).load("work").unwrap().unwrap(), &sample());
}

#[test]
fn modes_are_0700_for_directories_and_0600_for_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let s = store(&dir);
    s.save("work", &sample()).unwrap();
    drop(s.lock("work").unwrap());
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("tokens")), 0o700);
    assert_eq!(mode(&dir.join("tokens/work.json.enc")), 0o600);
    assert_eq!(mode(&dir.join("token.key")), 0o600);
    assert_eq!(mode(&dir.join("work.lock")), 0o600);
}

#[test]
fn a_group_readable_state_dir_of_ours_is_tightened() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
    store(&dir);
    assert_eq!(mode(&dir), 0o700);
}

#[test]
fn the_file_on_disk_holds_no_token_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    s.save("work", &sample()).unwrap();
    let on_disk = fs::read(tmp.path().join("tokens/work.json.enc")).unwrap();
    for secret in [ACCESS, REFRESH, "client-1", "version"] {
        assert!(
            !contains(&on_disk, secret.as_bytes()),
            "{secret} is on disk"
        );
    }
}

#[test]
fn a_file_moved_to_another_profile_does_not_decrypt() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    s.save("alice", &sample()).unwrap();
    let tokens = tmp.path().join("tokens");
    fs::rename(
        tokens.join("alice.json.enc"),
        tokens.join("mallory.json.enc"),
    )
    .unwrap();
    let err = s.load("mallory").unwrap_err();
    assert!(matches!(err, StoreError::Undecryptable { .. }), "{err}");
    assert!(err.to_string().contains("`mallory`"), "{err}");
}

#[test]
fn a_tampered_file_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    s.save("work", &sample()).unwrap();
    let path = tmp.path().join("tokens/work.json.enc");
    let mut bytes = fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        s.load("work"),
        Err(StoreError::Undecryptable { .. })
    ));
    fs::write(&path, b"").unwrap();
    let err = s.load("work").unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("`work`"), "{err}");
}

#[test]
fn a_newer_format_is_named_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    s.save("work", &sample()).unwrap();
    // A newer envelope: the version in the header.
    let path = tmp.path().join("tokens/work.json.enc");
    let mut bytes = fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&2u32.to_be_bytes());
    fs::write(&path, &bytes).unwrap();
    let err = s.load("work").unwrap_err();
    assert!(err.to_string().contains("newer mcpproxyd"), "{err}");
    // A newer record inside a current envelope.
    let json = br#"{"version": 9, "access_token": {"new": "shape"}}"#;
    let sealed = s.key.seal("work", json, &s.rng).unwrap();
    fs::write(&path, sealed).unwrap();
    let err = s.load("work").unwrap_err();
    assert!(
        matches!(err, StoreError::NewerVersion { found: 9, .. }),
        "{err}"
    );
}

#[test]
fn the_key_comes_from_the_systemd_credential_when_present() {
    let tmp = tempfile::tempdir().unwrap();
    let creds = tempfile::tempdir().unwrap();
    let raw: Vec<u8> = (100..132).collect();
    fs::write(creds.path().join("mcpproxyd-token-key"), &raw).unwrap();
    let dir = tmp.path().join("state");
    let s = FileStore::new(dir.clone(), Some(creds.path().to_path_buf())).unwrap();
    assert!(
        s.info().name.ends_with("(key: systemd credential)"),
        "{}",
        s.info().name
    );
    assert!(!dir.join("token.key").exists());
    s.save("work", &sample()).unwrap();
    // The same credential, as hex, reads it after a restart.
    fs::write(creds.path().join("mcpproxyd-token-key"), hex(&raw)).unwrap();
    let again = FileStore::new(dir.clone(), Some(creds.path().to_path_buf())).unwrap();
    assert_same(&again.load("work").unwrap().unwrap(), &sample());
    // Without it, a new key file is made, which cannot read the record.
    let other = FileStore::new(dir.clone(), None).unwrap();
    assert!(
        other.info().name.contains("key file"),
        "{}",
        other.info().name
    );
    assert!(matches!(
        other.load("work"),
        Err(StoreError::Undecryptable { .. })
    ));
    // A credentials directory without our credential falls back to the key file.
    let empty = tempfile::tempdir().unwrap();
    let fallback = FileStore::new(dir, Some(empty.path().to_path_buf())).unwrap();
    assert!(fallback.info().name.contains("key file"));
}

#[test]
fn delete_removes_and_absent_is_fine() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    s.delete("work").unwrap();
    s.save("work", &sample()).unwrap();
    s.save("other", &sample()).unwrap();
    s.delete("work").unwrap();
    assert!(s.load("work").unwrap().is_none());
    assert!(s.load("other").unwrap().is_some());
    assert!(!tmp.path().join("tokens/work.json.enc").exists());
}

#[test]
fn the_lock_excludes_a_second_locker_across_store_instances() {
    let tmp = tempfile::tempdir().unwrap();
    let a = store(tmp.path());
    let b = store(tmp.path());
    let held = a.lock("work").unwrap();
    assert!(b.try_lock("work").unwrap().is_none());
    assert!(a.try_lock("work").unwrap().is_none());
    assert!(b.try_lock("other").unwrap().is_some());
    drop(held);
    let taken = b.try_lock("work").unwrap();
    assert!(taken.is_some());
    assert!(a.try_lock("work").unwrap().is_none());
}

#[test]
fn a_temporary_file_left_by_a_crash_does_not_break_load_or_save() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    s.save("work", &sample()).unwrap();
    // A write interrupted before its rename: a partial temporary beside the record.
    let tokens = tmp.path().join("tokens");
    let partial = fs::read(tokens.join("work.json.enc")).unwrap();
    fs::write(
        tokens.join(".work.json.enc.0123456789abcdef.tmp"),
        &partial[..20],
    )
    .unwrap();
    assert_same(&s.load("work").unwrap().unwrap(), &sample());
    let mut newer = sample();
    newer.access_token = "at-rotated".into();
    s.save("work", &newer).unwrap();
    assert_same(&s.load("work").unwrap().unwrap(), &newer);
}

#[test]
fn odd_profile_names_stay_inside_the_tokens_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    for profile in ["../escape", "a/b", "ü", ".hidden"] {
        s.save(profile, &sample()).unwrap();
        assert!(s.load(profile).unwrap().is_some(), "{profile}");
    }
    let names: Vec<_> = fs::read_dir(tmp.path().join("tokens"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    assert!(!tmp.path().join("escape.json.enc").exists());
    assert!(matches!(s.load(""), Err(StoreError::InvalidProfile(..))));
}
