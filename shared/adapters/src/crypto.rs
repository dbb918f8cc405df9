//! Users' API keys at rest: AES-256-GCM with a fresh random 96-bit nonce per encryption and the
//! owning user id and the key's row id bound as associated data, so a ciphertext copied to another
//! row or another user does not decrypt. Keys are versioned: the row stores the version it was
//! encrypted with, old versions still decrypt, and `alphalab rotate-keys` re-encrypts every row
//! with the active one.
//!
//! `ENCRYPTION_KEYS` format: `v<N>=<base64 of 32 bytes>` entries separated by commas, then
//! `;active=v<N>`, for example `v1=3q2+7w...=,v2=q83v...=;active=v2`. Generate a key with
//! `openssl rand -base64 32`. The variable is a secret: never logged, never in an error.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use config::{ConfigError, Env, FromEnv};
use uuid::Uuid;

const NONCE_LEN: usize = 12;
/// Associated data: a label, the user id and the row id.
const AAD_LABEL: &[u8] = b"alphalab/api_keys/v1";

/// Why a ciphertext could not be used. Says nothing of the key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("no encryption key of version {0}")]
    UnknownVersion(i32),
    #[error("the stored key does not decrypt (tampered, or moved to another row or user)")]
    Undecryptable,
    #[error("encryption failed")]
    Encrypt,
}

/// The versioned keys and the active version.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(i32, Aes256Gcm)>,
    active: i32,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let versions: Vec<i32> = self.keys.iter().map(|(v, _)| *v).collect();
        f.debug_struct("Keyring")
            .field("versions", &versions)
            .field("active", &self.active)
            .finish()
    }
}

/// An encrypted key: what the row stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub version: i32,
    /// nonce (12 bytes) followed by the ciphertext and its 16-byte tag.
    pub bytes: Vec<u8>,
}

fn aad(user_id: Uuid, key_id: Uuid) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + 32);
    aad.extend_from_slice(AAD_LABEL);
    aad.extend_from_slice(user_id.as_bytes());
    aad.extend_from_slice(key_id.as_bytes());
    aad
}

impl Keyring {
    /// Parses the `ENCRYPTION_KEYS` format (see the module documentation).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (entries, active) = text
            .trim()
            .split_once(';')
            .ok_or("expected `v1=<base64>,...;active=v1`")?;
        let active = active
            .trim()
            .strip_prefix("active=")
            .ok_or("expected `;active=v<N>` after the keys")?;
        let active = parse_version(active)?;
        let mut keys = Vec::new();
        for entry in entries.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (version, key) = entry
                .split_once('=')
                .ok_or("each key is `v<N>=<base64 of 32 bytes>`")?;
            let version = parse_version(version)?;
            let bytes = B64
                .decode(key.trim())
                .map_err(|_| format!("key v{version} is not base64"))?;
            if bytes.len() != 32 {
                return Err(format!(
                    "key v{version} has {} bytes; AES-256 needs 32",
                    bytes.len()
                ));
            }
            if keys.iter().any(|(v, _)| *v == version) {
                return Err(format!("key v{version} is given twice"));
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes)
                .map_err(|_| format!("key v{version} is not an AES-256 key"))?;
            keys.push((version, cipher));
        }
        if !keys.iter().any(|(v, _)| *v == active) {
            return Err(format!("the active key v{active} is not among the keys"));
        }
        Ok(Self { keys, active })
    }

    /// A keyring of one new random key, version 1, in the `ENCRYPTION_KEYS` format (the local
    /// stack's development key).
    pub fn generate_text() -> String {
        let key = Aes256Gcm::generate_key(&mut OsRng);
        format!("v1={};active=v1", B64.encode(key))
    }

    pub fn active_version(&self) -> i32 {
        self.active
    }

    fn cipher(&self, version: i32) -> Result<&Aes256Gcm, CryptoError> {
        self.keys
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, c)| c)
            .ok_or(CryptoError::UnknownVersion(version))
    }

    /// Encrypts `plaintext` for the row `key_id` of `user_id` with the active key.
    pub fn seal(
        &self,
        user_id: Uuid,
        key_id: Uuid,
        plaintext: &str,
    ) -> Result<Sealed, CryptoError> {
        let cipher = self.cipher(self.active)?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = aad(user_id, key_id);
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Encrypt)?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext);
        Ok(Sealed {
            version: self.active,
            bytes,
        })
    }

    /// Decrypts a row's key. The plaintext lives only in memory, for the call that needs it.
    pub fn open(
        &self,
        user_id: Uuid,
        key_id: Uuid,
        sealed: &Sealed,
    ) -> Result<secrecy::SecretString, CryptoError> {
        let cipher = self.cipher(sealed.version)?;
        if sealed.bytes.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Undecryptable);
        }
        let (nonce, ciphertext) = sealed.bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Undecryptable)?;
        let aad = aad(user_id, key_id);
        let plaintext = cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Undecryptable)?;
        String::from_utf8(plaintext)
            .map(secrecy::SecretString::from)
            .map_err(|_| CryptoError::Undecryptable)
    }
}

fn parse_version(text: &str) -> Result<i32, String> {
    text.trim()
        .strip_prefix('v')
        .and_then(|n| n.parse::<i32>().ok())
        .filter(|n| *n >= 1)
        .ok_or_else(|| "a key version is `v` and a number from 1 (v1, v2, ...)".to_owned())
}

impl FromEnv for Keyring {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let text = env.require("ENCRYPTION_KEYS")?;
        Self::parse(&text).map_err(|reason| ConfigError::Invalid {
            name: "ENCRYPTION_KEYS",
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn key(byte: u8) -> String {
        B64.encode([byte; 32])
    }

    #[test]
    fn two_encryptions_of_one_key_differ_and_both_decrypt() {
        let ring = Keyring::parse(&format!("v1={};active=v1", key(7))).unwrap();
        let (user, row) = (Uuid::new_v4(), Uuid::new_v4());
        let a = ring.seal(user, row, "sk-or-v1-secret").unwrap();
        let b = ring.seal(user, row, "sk-or-v1-secret").unwrap();
        assert_ne!(a.bytes, b.bytes, "a fresh nonce each time");
        assert!(!String::from_utf8_lossy(&a.bytes).contains("secret"));
        for sealed in [a, b] {
            assert_eq!(
                ring.open(user, row, &sealed).unwrap().expose_secret(),
                "sk-or-v1-secret"
            );
        }
    }

    #[test]
    fn a_flipped_byte_or_another_row_or_user_fails_cleanly() {
        let ring = Keyring::parse(&format!("v1={};active=v1", key(7))).unwrap();
        let (user, row) = (Uuid::new_v4(), Uuid::new_v4());
        let sealed = ring.seal(user, row, "sk-or-v1-secret").unwrap();
        for i in [0, 12, sealed.bytes.len() - 1] {
            let mut tampered = sealed.clone();
            tampered.bytes[i] ^= 1;
            assert_eq!(
                ring.open(user, row, &tampered).unwrap_err(),
                CryptoError::Undecryptable
            );
        }
        assert_eq!(
            ring.open(Uuid::new_v4(), row, &sealed).unwrap_err(),
            CryptoError::Undecryptable
        );
        assert_eq!(
            ring.open(user, Uuid::new_v4(), &sealed).unwrap_err(),
            CryptoError::Undecryptable
        );
        let short = Sealed {
            version: 1,
            bytes: vec![1, 2, 3],
        };
        assert!(ring.open(user, row, &short).is_err());
    }

    #[test]
    fn old_versions_still_decrypt_and_new_seals_use_the_active_one() {
        let old = Keyring::parse(&format!("v1={};active=v1", key(1))).unwrap();
        let both = Keyring::parse(&format!("v1={},v2={};active=v2", key(1), key(2))).unwrap();
        let (user, row) = (Uuid::new_v4(), Uuid::new_v4());
        let sealed = old.seal(user, row, "k").unwrap();
        assert_eq!(both.open(user, row, &sealed).unwrap().expose_secret(), "k");
        assert_eq!(both.seal(user, row, "k").unwrap().version, 2);
        let without_v1 = Keyring::parse(&format!("v2={};active=v2", key(2))).unwrap();
        assert_eq!(
            without_v1.open(user, row, &sealed).unwrap_err(),
            CryptoError::UnknownVersion(1)
        );
    }

    #[test]
    fn malformed_keyrings_are_refused_with_a_reason_and_no_key_material() {
        for (text, says) in [
            ("", "expected"),
            (&format!("v1={}", key(1)) as &str, "expected"),
            (&format!("v1={};active=v2", key(1)), "active key v2"),
            ("v1=bm90IDMyIGJ5dGVz;active=v1", "needs 32"),
            ("v1=***;active=v1", "not base64"),
            (&format!("x={};active=x", key(1)), "version"),
            (&format!("v1={},v1={};active=v1", key(1), key(2)), "twice"),
        ] {
            let err = Keyring::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
            assert!(!err.contains(&key(1)), "{err}");
        }
        let generated = Keyring::generate_text();
        assert_eq!(Keyring::parse(&generated).unwrap().active_version(), 1);
        let ring = Keyring::parse(&generated).unwrap();
        assert!(!format!("{ring:?}").contains(&generated[3..20]));
    }
}
