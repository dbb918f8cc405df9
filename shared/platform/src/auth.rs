//! Clerk authentication: RS256 session tokens verified against the instance's JWKS, and the
//! [`AuthUser`] extractor that turns a verified token into the caller, provisioning the user row
//! on first use.
//!
//! Rules (PLATFORM.md, Clerk): signature by a key of the JWKS (fetched over HTTP, cached, fetched
//! again on an unknown `kid` at most once per `jwks_min_refresh`); `exp` and `nbf` with 5 s of
//! skew; `iss` equal to the configured issuer; `azp`, when present, one of the authorized parties.
//! Only RS256 is accepted: `alg: none` and HMAC tokens are refused before any key is consulted.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use uuid::Uuid;

use crate::config::ClerkConfig;
use crate::error::ApiError;
use crate::state::ApiState;

/// Allowed clock skew for `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 5;

/// The claims AlphaLab reads from a Clerk session token (v2).
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    /// The Clerk user id.
    pub sub: String,
    pub iss: String,
    pub exp: u64,
    #[serde(default)]
    pub nbf: Option<u64>,
    /// Authorized party: the origin the token was issued for.
    #[serde(default)]
    pub azp: Option<String>,
    /// Clerk session id.
    #[serde(default)]
    pub sid: Option<String>,
}

/// Why a token was refused. Every variant answers 401 except [`AuthError::KeysUnavailable`].
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed authorization header: expected `Bearer <token>`")]
    MalformedHeader,
    #[error("malformed token")]
    MalformedToken,
    #[error("token algorithm not accepted (only RS256)")]
    Algorithm,
    #[error("token has no key id")]
    NoKeyId,
    #[error("token signed by an unknown key")]
    UnknownKey,
    #[error("invalid token signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token issuer not accepted")]
    Issuer,
    #[error("token authorized party not accepted")]
    AuthorizedParty,
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::KeysUnavailable(cause) => ApiError::Unavailable(cause),
            other => ApiError::Unauthorized(other.to_string()),
        }
    }
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    last_attempt: Option<Instant>,
    /// Why the last fetch failed, while no key could be had at all.
    last_error: Option<String>,
}

/// Verifies Clerk session tokens. Built once per cold start; keys are fetched on first use.
pub struct Authenticator {
    config: ClerkConfig,
    http: reqwest::Client,
    cache: RwLock<KeyCache>,
    /// Single flight: one JWKS fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

impl Authenticator {
    pub fn new(config: ClerkConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            config,
            http,
            cache: RwLock::new(KeyCache::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// Verifies `token` and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header = decode_header(token).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::Json(_) | jsonwebtoken::errors::ErrorKind::Utf8(_) => {
                // an unknown `alg` (such as "none") fails to parse as a header
                if header_alg(token).is_some_and(|alg| alg != "RS256") {
                    AuthError::Algorithm
                } else {
                    AuthError::MalformedToken
                }
            }
            _ => AuthError::MalformedToken,
        })?;
        if header.alg != Algorithm::RS256 {
            return Err(AuthError::Algorithm);
        }
        let kid = header.kid.ok_or(AuthError::NoKeyId)?;
        let key = self.key(&kid).await?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_issuer(&[self.config.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);

        let claims = decode::<Claims>(token, &key, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::InvalidSignature => AuthError::Signature,
                    K::ExpiredSignature => AuthError::Expired,
                    K::ImmatureSignature => AuthError::NotYetValid,
                    K::InvalidIssuer => AuthError::Issuer,
                    K::InvalidAlgorithm | K::InvalidAlgorithmName => AuthError::Algorithm,
                    K::MissingRequiredClaim(_) => AuthError::Invalid("a required claim is missing"),
                    K::Base64(_) | K::Json(_) | K::Utf8(_) | K::InvalidToken => {
                        AuthError::MalformedToken
                    }
                    _ => AuthError::Invalid("token rejected"),
                }
            })?
            .claims;

        if claims.sub.is_empty() {
            return Err(AuthError::Invalid("empty subject"));
        }
        if let Some(azp) = &claims.azp {
            let parties = &self.config.authorized_parties;
            if !parties.is_empty() && !parties.iter().any(|p| p == azp.trim_end_matches('/')) {
                return Err(AuthError::AuthorizedParty);
            }
        }
        Ok(claims)
    }

    /// The key for `kid`, fetching the JWKS when it is unknown and the last fetch is old enough.
    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        let _single_flight = self.fetching.lock().await;
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        let (has_keys, last_attempt, last_error) = {
            let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
            (
                !cache.keys.is_empty(),
                cache.last_attempt,
                cache.last_error.clone(),
            )
        };
        // With no usable key at all, retry soon; otherwise respect the refresh interval.
        let interval = if has_keys {
            self.config.jwks_min_refresh
        } else {
            Duration::from_secs(1).min(self.config.jwks_min_refresh)
        };
        if last_attempt.is_some_and(|t| t.elapsed() < interval) {
            // Without any key we cannot tell a good token from a bad one: that is our outage
            // (503), not the caller's fault (a 401 would sign users out on a JWKS blip).
            return Err(match (has_keys, last_error) {
                (false, Some(error)) => AuthError::KeysUnavailable(error),
                _ => AuthError::UnknownKey,
            });
        }
        let fetched = self.fetch().await;
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        cache.last_attempt = Some(Instant::now());
        match fetched {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "fetched Clerk JWKS");
                cache.keys = keys;
                cache.last_error = None;
                cache.keys.get(kid).cloned().ok_or(AuthError::UnknownKey)
            }
            Err(err) if cache.keys.is_empty() => {
                cache.last_error = Some(match &err {
                    AuthError::KeysUnavailable(cause) => cause.clone(),
                    other => other.to_string(),
                });
                Err(err)
            }
            Err(err) => {
                tracing::warn!(error = %err, "JWKS refresh failed; keeping the cached keys");
                Err(AuthError::UnknownKey)
            }
        }
    }

    fn cached(&self, kid: &str) -> Option<DecodingKey> {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        cache.keys.get(kid).cloned()
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, AuthError> {
        let unavailable = |e: &dyn std::fmt::Display| AuthError::KeysUnavailable(e.to_string());
        let response = self
            .http
            .get(&self.config.jwks_url)
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        if !response.status().is_success() {
            return Err(AuthError::KeysUnavailable(format!(
                "JWKS endpoint answered {}",
                response.status()
            )));
        }
        let set: JwkSet = response.json().await.map_err(|e| unavailable(&e))?;
        let keys = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let key = DecodingKey::from_jwk(jwk).ok()?;
                matches!(
                    jwk.algorithm,
                    jsonwebtoken::jwk::AlgorithmParameters::RSA(_)
                )
                .then_some((kid, key))
            })
            .collect();
        Ok(keys)
    }
}

/// The `alg` of a token's header, read without trusting it.
fn header_alg(token: &str) -> Option<String> {
    use base64::Engine;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("alg")?.as_str().map(str::to_owned)
}

/// The authenticated caller. Extracting it verifies the bearer token, provisions the user row on
/// first use (so no endpoint depends on `/api/users/sync` having been called) and counts the
/// request against the caller's rate limit.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// AlphaLab's user id: scope every query with it.
    pub id: Uuid,
    /// The Clerk user id (`sub`).
    pub clerk_id: String,
}

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    ApiState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts)?;
        let api = ApiState::from_ref(state);
        let claims = api.auth.verify(token).await?;
        let pool = &api.pool;
        // `None`: the account was deleted again and again while we provisioned it
        let id = store::users::provision(pool, &claims.sub)
            .await?
            .ok_or_else(|| ApiError::Unavailable("account provisioning kept racing".into()))?;
        tracing::Span::current().record("user_id", tracing::field::display(id));
        // every authenticated request counts against the caller's budget
        api.limiter.check(id).await?;
        Ok(Self {
            id,
            clerk_id: claims.sub,
        })
    }
}

fn bearer_token(parts: &Parts) -> Result<&str, AuthError> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::MalformedHeader)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::MalformedHeader)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(AuthError::MalformedHeader);
    }
    Ok(token)
}
