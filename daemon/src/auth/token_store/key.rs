//! The file store's AEAD key (a systemd credential or a 0600 key file) and the sealed format.
//!
//! Key sources, first found wins:
//! 1. the systemd credential `$CREDENTIALS_DIRECTORY/mcpproxyd-token-key`: 32 raw bytes (what
//!    `head -c32 /dev/urandom > k; systemd-creds encrypt --name=mcpproxyd-token-key k -`
//!    seals, and `LoadCredentialEncrypted=` hands back), or 64 hex digits, or the base64 of
//!    32 bytes (surrounding whitespace ignored for the text forms);
//! 2. `<state dir>/token.key`: 32 raw bytes, mode 0600, created on first use.
//!
//! Sealed file: `MAGIC (8) | format version (u32 BE) | nonce (12) | ciphertext | tag (16)`,
//! ChaCha20-Poly1305 with a random nonce per write. The associated data is the magic, the
//! version and the profile name, so a file moved to another profile's name fails to open.

use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::error::StoreError;
use super::paths::sync_dir;
use super::record::RECORD_VERSION;

/// The name of the systemd credential that holds the key.
pub const CREDENTIAL_NAME: &str = "mcpproxyd-token-key";
/// The key file in the state directory when there is no credential.
pub const KEY_FILE: &str = "token.key";

const KEY_LEN: usize = 32;
const MAGIC: &[u8; 8] = b"mcpxtok\0";
const HEADER_LEN: usize = MAGIC.len() + 4 + NONCE_LEN;
const TAG_LEN: usize = 16;

/// Where the key came from, for `info()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeySource {
    Credential,
    KeyFile(PathBuf),
}

/// The key, ready to seal and open records.
pub(crate) struct TokenKey {
    key: LessSafeKey,
    pub(crate) source: KeySource,
}

impl TokenKey {
    /// The credential in `credentials_dir` if there is one, else `<state_dir>/token.key`
    /// (created if missing). `state_dir` must exist.
    pub(crate) fn load(
        state_dir: &Path,
        credentials_dir: Option<&Path>,
        rng: &SystemRandom,
    ) -> Result<TokenKey, StoreError> {
        if let Some(cred) = credentials_dir.map(|d| d.join(CREDENTIAL_NAME)) {
            match fs::read(&cred) {
                Ok(bytes) => {
                    let bytes = Zeroizing::new(bytes);
                    let key = parse_credential(&bytes).ok_or_else(|| StoreError::BadKey {
                        origin: format!("credential {}", cred.display()),
                        reason: "it must be 32 raw bytes, 64 hex digits, or base64 of 32 bytes",
                    })?;
                    return Ok(TokenKey::new(&key, KeySource::Credential));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StoreError::Io {
                        action: "read the credential",
                        path: cred,
                        source,
                    })
                }
            }
        }
        let path = state_dir.join(KEY_FILE);
        let key = match read_key_file(&path)? {
            Some(key) => key,
            None => create_key_file(&path, rng)?,
        };
        Ok(TokenKey::new(&key, KeySource::KeyFile(path)))
    }

    fn new(key: &[u8; KEY_LEN], source: KeySource) -> TokenKey {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key");
        TokenKey {
            key: LessSafeKey::new(unbound),
            source,
        }
    }

    /// `plaintext` sealed for `profile`, with a fresh random nonce.
    pub(crate) fn seal(
        &self,
        profile: &str,
        plaintext: &[u8],
        rng: &SystemRandom,
    ) -> Result<Vec<u8>, StoreError> {
        self.seal_as(RECORD_VERSION, profile, plaintext, rng)
    }

    fn seal_as(
        &self,
        version: u32,
        profile: &str,
        plaintext: &[u8],
        rng: &SystemRandom,
    ) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce).map_err(|_| StoreError::Random)?;
        // Exact capacity: the plaintext copy is encrypted in place and never reallocated.
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(version, profile)),
                &mut out[HEADER_LEN..],
            )
            .expect("a record is far below the AEAD size limit");
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// The plaintext of a file sealed for `profile`.
    pub(crate) fn open(
        &self,
        profile: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let corrupt = |reason: &str| StoreError::Corrupt {
            profile: profile.to_string(),
            reason: reason.to_string(),
        };
        if sealed.len() < MAGIC.len() + 4 || &sealed[..MAGIC.len()] != MAGIC {
            return Err(corrupt("not an mcpproxyd token file"));
        }
        let version = u32::from_be_bytes(sealed[MAGIC.len()..][..4].try_into().expect("4 bytes"));
        if version > RECORD_VERSION {
            return Err(StoreError::NewerVersion {
                profile: profile.to_string(),
                found: version,
                supported: RECORD_VERSION,
            });
        }
        if version != RECORD_VERSION {
            return Err(corrupt("unknown file format"));
        }
        if sealed.len() < HEADER_LEN + TAG_LEN {
            return Err(corrupt("the file is cut short"));
        }
        let nonce: [u8; NONCE_LEN] = sealed[MAGIC.len() + 4..HEADER_LEN]
            .try_into()
            .expect("nonce");
        let mut buf = Zeroizing::new(sealed[HEADER_LEN..].to_vec());
        let len = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(version, profile)),
                &mut buf,
            )
            .map_err(|_| StoreError::Undecryptable {
                profile: profile.to_string(),
            })?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

fn aad(version: u32, profile: &str) -> Vec<u8> {
    [&MAGIC[..], &version.to_be_bytes(), profile.as_bytes()].concat()
}

/// 32 raw bytes; or, trimmed, 64 hex digits or base64 (padded or not) of 32 bytes.
fn parse_credential(bytes: &[u8]) -> Option<Zeroizing<[u8; KEY_LEN]>> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if bytes.len() == KEY_LEN {
        key.copy_from_slice(bytes);
        return Some(key);
    }
    let text = bytes.trim_ascii();
    if text.len() == 2 * KEY_LEN && text.iter().all(u8::is_ascii_hexdigit) {
        for (k, pair) in key.iter_mut().zip(text.chunks(2)) {
            let digit = |c: u8| char::from(c).to_digit(16).expect("hex digit") as u8;
            *k = digit(pair[0]) << 4 | digit(pair[1]);
        }
        return Some(key);
    }
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let decoded = Zeroizing::new(engine.decode(text).ok()?);
    if decoded.len() != KEY_LEN {
        return None;
    }
    key.copy_from_slice(&decoded);
    Some(key)
}

/// The key in `path`, or `None` if there is no such file. Refused if others can access it.
fn read_key_file(path: &Path) -> Result<Option<Zeroizing<[u8; KEY_LEN]>>, StoreError> {
    let io_err = |action, source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open the key file", e)),
    };
    // Checked on the open file, so the mode is that of the file read.
    let meta = file
        .metadata()
        .map_err(|e| io_err("inspect the key file", e))?;
    if meta.mode() & 0o077 != 0 {
        return Err(StoreError::InsecureKeyFile {
            path: path.to_path_buf(),
            mode: meta.mode() & 0o7777,
        });
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(KEY_LEN + 1));
    (&mut file)
        .take(KEY_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_err("read the key file", e))?;
    if bytes.len() != KEY_LEN {
        return Err(StoreError::BadKey {
            origin: format!("file {}", path.display()),
            reason: "it must hold exactly 32 bytes",
        });
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&bytes);
    Ok(Some(key))
}

/// Creates the key file with 32 random bytes. It appears complete or not at all (written to a
/// temporary file, then hard-linked into place); if another process won the race, its key is
/// the one used.
fn create_key_file(
    path: &Path,
    rng: &SystemRandom,
) -> Result<Zeroizing<[u8; KEY_LEN]>, StoreError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    rng.fill(&mut key[..]).map_err(|_| StoreError::Random)?;
    let mut unique = [0u8; 8];
    rng.fill(&mut unique).map_err(|_| StoreError::Random)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{KEY_FILE}.{}.tmp", hex(&unique)));
    let io_err = |action, path: &Path, source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            io::Write::write_all(&mut f, &key[..])?;
            f.sync_all()
        })
        .map_err(|e| io_err("write", &tmp, e));
    let linked = written.and_then(|()| match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_err("create the key file", path, e)),
    });
    let _ = fs::remove_file(&tmp);
    if !linked? {
        return read_key_file(path)?
            .ok_or_else(|| io_err("read the key file", path, io::ErrorKind::NotFound.into()));
    }
    sync_dir(dir)?;
    tracing::info!(path = %path.display(), "token store: created a new token key file");
    Ok(key)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn credential_forms() {
        let raw: Vec<u8> = (0..32).collect();
        let hex_text = format!("{}\n", hex(&raw));
        let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
        let b64_unpadded = b64.trim_end_matches('=').to_string();
        for form in [
            raw.clone(),
            hex_text.into_bytes(),
            b64.into_bytes(),
            b64_unpadded.into_bytes(),
        ] {
            assert_eq!(&parse_credential(&form).unwrap()[..], &raw[..]);
        }
        for bad in [&b"short"[..], &[0u8; 33], b"zz", &[b'a'; 64][..63]] {
            assert!(parse_credential(bad).is_none());
        }
    }

    #[test]
    fn key_file_is_created_once_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let rng = SystemRandom::new();
        let a = TokenKey::load(dir.path(), None, &rng).unwrap();
        let path = dir.path().join(KEY_FILE);
        assert_eq!(a.source, KeySource::KeyFile(path.clone()));
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::read(&path).unwrap().len(), KEY_LEN);
        let sealed = a.seal("p", b"hello", &rng).unwrap();
        let b = TokenKey::load(dir.path(), None, &rng).unwrap();
        assert_eq!(&b.open("p", &sealed).unwrap()[..], b"hello");
        // Only the key file: no temporary left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let rng = SystemRandom::new();
        TokenKey::load(dir.path(), None, &rng).unwrap();
        let path = dir.path().join(KEY_FILE);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = TokenKey::load(dir.path(), None, &rng).err().unwrap();
        assert!(matches!(err, StoreError::InsecureKeyFile { .. }), "{err}");
    }

    #[test]
    fn a_bad_credential_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let creds = tempfile::tempdir().unwrap();
        fs::write(creds.path().join(CREDENTIAL_NAME), b"not a key").unwrap();
        let err = TokenKey::load(dir.path(), Some(creds.path()), &SystemRandom::new())
            .err()
            .unwrap();
        assert!(err.to_string().contains(CREDENTIAL_NAME), "{err}");
    }

    #[test]
    fn sealed_data_opens_only_for_its_profile_and_untampered() {
        let rng = SystemRandom::new();
        let key = TokenKey::new(&[7; KEY_LEN], KeySource::Credential);
        let sealed = key.seal("a", b"secret", &rng).unwrap();
        assert_eq!(&key.open("a", &sealed).unwrap()[..], b"secret");
        assert!(matches!(
            key.open("b", &sealed),
            Err(StoreError::Undecryptable { .. })
        ));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(
            key.open("a", &flipped),
            Err(StoreError::Undecryptable { .. })
        ));
        let newer = key
            .seal_as(RECORD_VERSION + 1, "a", b"secret", &rng)
            .unwrap();
        assert!(matches!(
            key.open("a", &newer),
            Err(StoreError::NewerVersion { .. })
        ));
        assert!(matches!(
            key.open("a", b"junk"),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            key.open("a", &sealed[..30]),
            Err(StoreError::Corrupt { .. })
        ));
        // Two seals of the same text differ (fresh nonce).
        assert_ne!(sealed, key.seal("a", b"secret", &rng).unwrap());
    }
}
