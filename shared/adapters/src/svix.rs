//! Svix webhook signatures, as Clerk sends them (PLATFORM.md, Clerk): headers `svix-id`,
//! `svix-timestamp` (Unix seconds) and `svix-signature` (space-separated `v1,<base64>` entries,
//! one per active secret); the signed content is `{id}.{timestamp}.{raw body}`, HMAC-SHA256 with the
//! base64-decoded part of the secret after `whsec_`; timestamps more than 5 minutes away from now
//! (either way) are refused. Comparison is constant-time.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use config::{ConfigError, Env, FromEnv};

/// Largest distance between the signature's timestamp and now.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// The endpoint's signing secret (`CLERK_WEBHOOK_SECRET`, `whsec_` + base64). Never printed.
#[derive(Clone)]
pub struct WebhookSecret(hmac::Key);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

impl WebhookSecret {
    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text
            .trim()
            .strip_prefix("whsec_")
            .ok_or("expected `whsec_` followed by base64")?;
        let bytes = B64
            .decode(encoded)
            .map_err(|_| "the part after `whsec_` is not base64".to_owned())?;
        if bytes.is_empty() {
            return Err("the secret is empty".into());
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, &bytes)))
    }
}

impl FromEnv for WebhookSecret {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Self::parse(&env.require("CLERK_WEBHOOK_SECRET")?).map_err(|reason| ConfigError::Invalid {
            name: "CLERK_WEBHOOK_SECRET",
            reason,
        })
    }
}

/// Why a delivery was refused (each answers 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("svix-timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("svix-timestamp is more than 5 minutes from now")]
    Stale,
    #[error("no valid signature")]
    Invalid,
}

/// Checks a delivery's headers (`None` when absent) against its raw body at `now` (Unix
/// seconds).
pub fn verify(
    secret: &WebhookSecret,
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let id = id.ok_or(SignatureError::Missing("svix-id"))?;
    let timestamp = timestamp.ok_or(SignatureError::Missing("svix-timestamp"))?;
    let signatures = signatures.ok_or(SignatureError::Missing("svix-signature"))?;
    let seconds: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if (now - seconds).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    let mut signed = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    signed.extend_from_slice(id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp.trim().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    let valid = signatures
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| B64.decode(b64).ok())
        .any(|tag| hmac::verify(&secret.0, &signed, &tag).is_ok());
    if valid {
        Ok(())
    } else {
        Err(SignatureError::Invalid)
    }
}

/// Signs like Svix (for the tests and the local tool's examples).
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    format!("v1,{}", B64.encode(hmac::sign(&secret.0, &signed).as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> WebhookSecret {
        WebhookSecret::parse(&format!(
            "whsec_{}",
            B64.encode(b"0123456789abcdef0123456789abcdef")
        ))
        .unwrap()
    }

    #[test]
    fn a_signature_made_with_the_secret_verifies_and_anything_else_does_not() {
        let s = secret();
        let body = br#"{"type":"user.created"}"#;
        let sig = sign(&s, "msg_1", 1_000, body);
        assert_eq!(
            verify(&s, Some("msg_1"), Some("1000"), Some(&sig), body, 1_100),
            Ok(())
        );
        // tampered body, other id, other timestamp
        assert_eq!(
            verify(&s, Some("msg_1"), Some("1000"), Some(&sig), b"{}", 1_100),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify(&s, Some("msg_2"), Some("1000"), Some(&sig), body, 1_100),
            Err(SignatureError::Invalid)
        );
        // several entries, one valid
        let several = format!("v1,AAAA v2,zzz {sig}");
        assert_eq!(
            verify(&s, Some("msg_1"), Some("1000"), Some(&several), body, 1_100),
            Ok(())
        );
        // stale and future
        assert_eq!(
            verify(
                &s,
                Some("msg_1"),
                Some("1000"),
                Some(&sig),
                body,
                1_000 + 301
            ),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(
                &s,
                Some("msg_1"),
                Some("1000"),
                Some(&sig),
                body,
                1_000 - 301
            ),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(&s, None, Some("1000"), Some(&sig), body, 1_000),
            Err(SignatureError::Missing("svix-id"))
        );
        assert_eq!(
            verify(&s, Some("m"), Some("soon"), Some(&sig), body, 1_000),
            Err(SignatureError::BadTimestamp)
        );
    }

    #[test]
    fn malformed_secrets_are_refused() {
        assert!(WebhookSecret::parse("abc").is_err());
        assert!(WebhookSecret::parse("whsec_***").is_err());
        assert!(WebhookSecret::parse("whsec_").is_err());
        assert!(!format!("{:?}", secret()).contains("0123"));
    }
}
