use std::os::unix::fs::PermissionsExt;

use secrecy::ExposeSecret;

use super::*;

const SECRET: &str = "s3cr3t-value-never-shown";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn cli_config(home: &Path, text: &str) {
    write(&home.join(".aliyun/config.json"), text);
}

/// The shape `aliyun configure` writes (fields beyond ours included).
const CLI_CONFIG: &str = r#"{
  "current": "default",
  "profiles": [
    {"name": "default", "mode": "AK", "access_key_id": "LTAIdefault",
     "access_key_secret": "s3cr3t-value-never-shown", "sts_token": "", "ram_role_name": "",
     "region_id": "cn-hangzhou", "output_format": "json", "language": "en"},
    {"name": "sts", "mode": "StsToken", "access_key_id": "STS.id",
     "access_key_secret": "s3cr3t-value-never-shown", "sts_token": "tok"},
    {"name": "role", "mode": "RamRoleArn", "access_key_id": "x", "access_key_secret": "y",
     "ram_role_arn": "acs:ram::1:role/r"},
    {"name": "sso", "mode": "CloudSSO"},
    {"name": "half", "mode": "AK", "access_key_id": "LTAIhalf", "access_key_secret": ""}
  ],
  "meta_path": ""
}"#;

fn assert_hides_secret(err: &CredentialsError) {
    let text = err.to_string();
    assert!(!text.contains(SECRET), "{text}");
}

// === source syntax ===

#[test]
fn sources_parse() {
    assert_eq!(KeySource::parse("env").unwrap(), KeySource::Env);
    assert_eq!(
        KeySource::parse("profile:prod").unwrap(),
        KeySource::Profile(Some("prod".into()))
    );
    assert_eq!(
        KeySource::parse("profile:").unwrap(),
        KeySource::Profile(None)
    );
    assert_eq!(
        KeySource::parse("credential:alibaba-ak").unwrap(),
        KeySource::Credential("alibaba-ak".into())
    );
    for bad in [
        "",
        "ENV",
        "file:/x",
        "credential:",
        "credential:../x",
        "credential:..",
    ] {
        assert!(KeySource::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        KeySource::parse("profile:prod").unwrap().to_string(),
        "profile:prod"
    );
}

// === env ===

#[test]
fn env_pair_and_token() {
    let sources = Sources::default()
        .with_env(ENV_ACCESS_KEY_ID, "LTAIenv")
        .with_env(ENV_ACCESS_KEY_SECRET, &format!(" {SECRET}\n"))
        .with_env(ENV_SECURITY_TOKEN, "sts");
    let key = load(&KeySource::Env, &sources).unwrap();
    assert_eq!(key.id, "LTAIenv");
    assert_eq!(key.secret.expose_secret(), SECRET);
    assert_eq!(key.security_token.unwrap().expose_secret(), "sts");
    assert_eq!(key.source, "environment");
}

#[test]
fn env_missing_names_the_variable() {
    let only_id = Sources::default().with_env(ENV_ACCESS_KEY_ID, "LTAIenv");
    let err = load(&KeySource::Env, &only_id).unwrap_err();
    assert!(err.to_string().contains(ENV_ACCESS_KEY_SECRET), "{err}");
    let none = load(&KeySource::Env, &Sources::default()).unwrap_err();
    assert!(matches!(
        none,
        CredentialsError::MissingEnv {
            missing: ENV_ACCESS_KEY_ID
        }
    ));
    let empty = Sources::default()
        .with_env(ENV_ACCESS_KEY_ID, "LTAIenv")
        .with_env(ENV_ACCESS_KEY_SECRET, "  ");
    assert!(load(&KeySource::Env, &empty).is_err());
}

// === ~/.aliyun/config.json ===

#[test]
fn profile_by_name_and_current() {
    let home = tempfile::tempdir().unwrap();
    cli_config(home.path(), CLI_CONFIG);
    let sources = Sources::default().with_home(home.path());
    let named = load(&KeySource::Profile(Some("default".into())), &sources).unwrap();
    assert_eq!(named.id, "LTAIdefault");
    assert_eq!(named.secret.expose_secret(), SECRET);
    assert!(named.security_token.is_none());
    assert!(named.source.contains("profile default"));
    let current = load(&KeySource::Profile(None), &sources).unwrap();
    assert_eq!(current.id, "LTAIdefault");
}

#[test]
fn sts_profile_carries_its_token() {
    let home = tempfile::tempdir().unwrap();
    cli_config(home.path(), CLI_CONFIG);
    let key = load(
        &KeySource::Profile(Some("sts".into())),
        &Sources::default().with_home(home.path()),
    )
    .unwrap();
    assert_eq!(key.security_token.unwrap().expose_secret(), "tok");
}

#[test]
fn unknown_profile_lists_the_known_ones() {
    let home = tempfile::tempdir().unwrap();
    cli_config(home.path(), CLI_CONFIG);
    let err = load(
        &KeySource::Profile(Some("prod".into())),
        &Sources::default().with_home(home.path()),
    )
    .unwrap_err();
    assert!(matches!(err, CredentialsError::UnknownProfile { .. }));
    let text = err.to_string();
    assert!(
        text.contains("`prod`") && text.contains("default, sts, role"),
        "{text}"
    );
}

#[test]
fn non_ak_modes_are_refused_with_the_fix() {
    let home = tempfile::tempdir().unwrap();
    cli_config(home.path(), CLI_CONFIG);
    let sources = Sources::default().with_home(home.path());
    for (name, mode) in [("role", "RamRoleArn"), ("sso", "CloudSSO")] {
        let err = load(&KeySource::Profile(Some(name.into())), &sources).unwrap_err();
        assert!(
            matches!(&err, CredentialsError::UnsupportedMode { mode: m, .. } if m == mode),
            "{err}"
        );
        assert!(err.to_string().contains("--mode AK"), "{err}");
    }
}

#[test]
fn incomplete_profile_names_the_field() {
    let home = tempfile::tempdir().unwrap();
    cli_config(home.path(), CLI_CONFIG);
    let err = load(
        &KeySource::Profile(Some("half".into())),
        &Sources::default().with_home(home.path()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("access_key_secret"), "{err}");
}

#[test]
fn missing_or_broken_config_file() {
    let home = tempfile::tempdir().unwrap();
    let sources = Sources::default().with_home(home.path());
    let missing = load(&KeySource::Profile(None), &sources).unwrap_err();
    assert!(
        matches!(missing, CredentialsError::Read { .. }),
        "{missing}"
    );
    assert!(matches!(
        load(&KeySource::Profile(None), &Sources::default()).unwrap_err(),
        CredentialsError::NoHome
    ));
    // A type error would quote the value in serde_json's own message: ours keeps only the
    // position.
    cli_config(
        home.path(),
        &format!(r#"{{"profiles": [{{"name": "x", "access_key_secret": ["{SECRET}"]}}]}}"#),
    );
    let err = load(&KeySource::Profile(Some("x".into())), &sources).unwrap_err();
    assert!(matches!(err, CredentialsError::Json { .. }), "{err}");
    assert_hides_secret(&err);
    cli_config(home.path(), r#"{"profiles": []}"#);
    let err = load(&KeySource::Profile(None), &sources).unwrap_err();
    assert!(matches!(err, CredentialsError::NoCurrentProfile { .. }));
}

// === systemd credentials ===

#[test]
fn credential_as_id_colon_secret() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("ak"), &format!("LTAIcred:{SECRET}\n"));
    let key = load(
        &KeySource::Credential("ak".into()),
        &Sources::default().with_credentials_dir(dir.path()),
    )
    .unwrap();
    assert_eq!(key.id, "LTAIcred");
    assert_eq!(key.secret.expose_secret(), SECRET);
    assert_eq!(key.source, "systemd credential ak");
}

#[test]
fn credential_as_json() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("ak.json"),
        &format!(
            r#"{{"access_key_id": "LTAIjson", "access_key_secret": "{SECRET}", "security_token": "t"}}"#
        ),
    );
    let key = load(
        &KeySource::Credential("ak.json".into()),
        &Sources::default().with_credentials_dir(dir.path()),
    )
    .unwrap();
    assert_eq!(key.id, "LTAIjson");
    assert_eq!(key.security_token.unwrap().expose_secret(), "t");
}

#[test]
fn credential_errors() {
    let err = load(&KeySource::Credential("ak".into()), &Sources::default()).unwrap_err();
    assert!(err.to_string().contains("CREDENTIALS_DIRECTORY"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let sources = Sources::default().with_credentials_dir(dir.path());
    for (i, text) in [
        SECRET.to_string(),
        format!(":{SECRET}"),
        format!("id:{SECRET} more"),
        format!(r#"{{"access_key_secret": "{SECRET}"}}"#),
    ]
    .iter()
    .enumerate()
    {
        let name = format!("bad{i}");
        write(&dir.path().join(&name), text);
        let err = load(&KeySource::Credential(name), &sources).unwrap_err();
        assert!(
            matches!(err, CredentialsError::CredentialFormat { .. }),
            "{text}: {err}"
        );
        assert_hides_secret(&err);
    }
    let missing = load(&KeySource::Credential("absent".into()), &sources).unwrap_err();
    assert!(matches!(missing, CredentialsError::Read { .. }));
}

#[test]
fn debug_never_shows_secrets() {
    let key = AccessKey {
        id: "LTAI5tExampleId".into(),
        secret: SecretString::from(SECRET.to_string()),
        security_token: Some(SecretString::from("token-also-hidden".to_string())),
        source: "test".into(),
    };
    let text = format!("{key:?}");
    assert!(!text.contains(SECRET) && !text.contains("token-also-hidden"));
    assert!(!text.contains("LTAI5tExampleId"), "{text}");
    assert!(text.contains("LTAI…"), "{text}");
    let sources = Sources::default().with_env(ENV_ACCESS_KEY_SECRET, SECRET);
    assert!(!format!("{sources:?}").contains(SECRET));
}
