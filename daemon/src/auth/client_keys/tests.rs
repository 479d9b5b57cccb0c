//! The key store's behaviour: add, look up, expire, revoke, survive a restart and a crash.

use super::*;

fn key_hash(key: &SecretString) -> KeyHash {
    KeyHash::of(secret::reveal(key))
}

#[test]
fn a_new_key_authenticates_by_its_digest_and_records_the_use() {
    let dir = tempfile::tempdir().unwrap();
    let keys = ClientKeys::open(dir.path());
    let (key, rec) = keys
        .add(
            "dify",
            vec!["ecs".into()],
            vec!["Describe*".into()],
            None,
            100,
        )
        .unwrap();
    assert_eq!(rec.sha256, key_hash(&key).to_hex());
    let ok = keys.authenticate(&key_hash(&key), 150).unwrap();
    assert_eq!(ok.name, "dify");
    assert_eq!(ok.servers, ["ecs"]);
    assert_eq!(ok.tools, ["Describe*"]);
    assert_eq!(keys.get("dify").unwrap().last_used, Some(150));
    assert_eq!(
        keys.authenticate(&KeyHash::of("mcpp_other"), 150)
            .unwrap_err(),
        Refusal::Unknown
    );
}

#[test]
fn the_file_holds_digests_never_keys() {
    let dir = tempfile::tempdir().unwrap();
    let keys = ClientKeys::open(dir.path());
    let (key, _) = keys.add("a", vec![], vec![], None, 1).unwrap();
    let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
    assert!(!text.contains(secret::reveal(&key)), "{text}");
    assert!(text.contains(&key_hash(&key).to_hex()), "{text}");
    use std::os::unix::fs::MetadataExt;
    let mode = std::fs::metadata(dir.path().join(FILE_NAME))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn names_are_unique_while_the_key_is_usable() {
    let dir = tempfile::tempdir().unwrap();
    let keys = ClientKeys::open(dir.path());
    keys.add("a", vec![], vec![], None, 1).unwrap();
    assert_eq!(
        keys.add("a", vec![], vec![], None, 2).unwrap_err(),
        KeysError::Exists("a".into())
    );
    assert!(matches!(
        keys.add("a b", vec![], vec![], None, 2),
        Err(KeysError::InvalidName(_))
    ));
    keys.revoke("a", 3).unwrap();
    let (again, _) = keys.add("a", vec![], vec![], None, 4).unwrap();
    assert!(keys.authenticate(&key_hash(&again), 5).is_ok());
    assert_eq!(keys.list().len(), 1);
}

#[test]
fn revoke_refuses_the_next_use_and_closes_streams() {
    let dir = tempfile::tempdir().unwrap();
    let keys = ClientKeys::open(dir.path());
    let (key, _) = keys.add("a", vec![], vec![], None, 1).unwrap();
    let ok = keys.authenticate(&key_hash(&key), 2).unwrap();
    assert!(!ok.streams.is_cancelled());
    keys.revoke("a", 3).unwrap();
    assert!(ok.streams.is_cancelled());
    assert_eq!(
        keys.authenticate(&key_hash(&key), 4).unwrap_err(),
        Refusal::Revoked("a".into())
    );
    assert_eq!(
        keys.revoke("nope", 5).unwrap_err(),
        KeysError::Unknown("nope".into())
    );
    // A second revoke keeps the first time.
    assert_eq!(keys.revoke("a", 9).unwrap().revoked_at, Some(3));
}

#[test]
fn expired_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keys = ClientKeys::open(dir.path());
    let (key, _) = keys.add("a", vec![], vec![], Some(100), 1).unwrap();
    assert!(keys.authenticate(&key_hash(&key), 99).is_ok());
    assert_eq!(
        keys.authenticate(&key_hash(&key), 100).unwrap_err(),
        Refusal::Expired("a".into())
    );
}

#[test]
fn keys_survive_a_restart_with_their_last_use() {
    let dir = tempfile::tempdir().unwrap();
    let (key, revoked) = {
        let keys = ClientKeys::open(dir.path());
        let (key, _) = keys.add("a", vec!["ecs".into()], vec![], None, 1).unwrap();
        let (revoked, _) = keys.add("b", vec![], vec![], None, 1).unwrap();
        keys.revoke("b", 2).unwrap();
        keys.authenticate(&key_hash(&key), 500).unwrap();
        assert!(keys.flush_due(500));
        keys.flush(500);
        (key, revoked)
    };
    let keys = ClientKeys::open(dir.path());
    let ok = keys.authenticate(&key_hash(&key), 600).unwrap();
    assert_eq!(ok.servers, ["ecs"]);
    assert_eq!(
        keys.authenticate(&key_hash(&revoked), 600).unwrap_err(),
        Refusal::Revoked("b".into())
    );
    assert_eq!(keys.get("a").unwrap().last_used, Some(600));
}

#[test]
fn a_crash_mid_write_leaves_the_old_file_and_its_temporary_is_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let key = {
        let keys = ClientKeys::open(dir.path());
        keys.add("a", vec![], vec![], None, 1).unwrap().0
    };
    // What a crash between writing the temporary and the rename leaves behind: a partial
    // temporary beside the intact file.
    let full = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
    let tmp = dir.path().join(format!(".{FILE_NAME}.4242-0.tmp"));
    std::fs::write(&tmp, &full[..full.len() / 2]).unwrap();
    let keys = ClientKeys::open(dir.path());
    assert!(keys.authenticate(&key_hash(&key), 2).is_ok());
    assert!(!tmp.exists(), "the stale temporary is removed");
    keys.add("b", vec![], vec![], None, 3).unwrap();
    assert_eq!(keys.list().len(), 2);
}

#[test]
fn a_corrupt_file_accepts_no_key_and_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    std::fs::write(&path, b"{\"version\": 1, \"keys\": [").unwrap();
    let keys = ClientKeys::open(dir.path());
    assert!(matches!(
        keys.add("a", vec![], vec![], None, 1),
        Err(KeysError::Broken { .. })
    ));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"{\"version\": 1, \"keys\": ["
    );
}

#[test]
fn a_failed_save_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The state "directory" is a file: nothing can be written under it.
    let blocker = dir.path().join("state");
    let keys = ClientKeys::open(&blocker);
    std::fs::write(&blocker, b"").unwrap();
    assert!(matches!(
        keys.add("a", vec![], vec![], None, 1),
        Err(KeysError::Write(_))
    ));
    assert!(keys.list().is_empty());
}
