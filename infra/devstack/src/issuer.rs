//! A local stand-in for Clerk's token side: RSA signing keys, session tokens with Clerk's v2
//! claims, and the JWKS served over real HTTP at `/.well-known/jwks.json`, the path Clerk uses.
//!
//! Tokens are encoded here by hand (header.payload.signature, RS256 = RSASSA-PKCS1-v1_5 with
//! SHA-256) so that tests can also craft the hostile ones: `alg: none`, HS256 signed with the
//! public key, unknown key ids.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, Result, anyhow};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use axum::Json;
use axum::extract::State;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

/// An RSA signing key with its key id.
pub struct SigningKey {
    pub kid: String,
    pair: KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new 2048-bit key.
    pub fn generate() -> Result<Self> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| anyhow!("RSA keygen failed"))?;
        Self::from_pair(pair)
    }

    /// A key from its PKCS#8 DER form (see [`SigningKey::to_pkcs8_der`]).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let pair = KeyPair::from_pkcs8(der).map_err(|e| anyhow!("invalid signing key: {e}"))?;
        Self::from_pair(pair)
    }

    fn from_pair(pair: KeyPair) -> Result<Self> {
        // the key id is derived from the public key, as stable as the key itself
        let n = pair
            .public_key()
            .modulus()
            .big_endian_without_leading_zero()
            .to_vec();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &n);
        let kid = format!("ins_{}", &B64.encode(digest.as_ref())[..16]);
        Ok(Self { kid, pair })
    }

    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>> {
        let der = self.pair.as_der().map_err(|_| anyhow!("encoding key"))?;
        Ok(der.as_ref().to_vec())
    }

    /// The public half as a JWK, the way Clerk publishes it.
    pub fn jwk(&self) -> Value {
        let public = self.pair.public_key();
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": B64.encode(public.modulus().big_endian_without_leading_zero()),
            "e": B64.encode(public.exponent().big_endian_without_leading_zero()),
        })
    }

    /// The public key in PEM (SubjectPublicKeyInfo), for the HS256 confusion test.
    pub fn public_pem(&self) -> Result<String> {
        let der = self
            .pair
            .public_key()
            .as_der()
            .map_err(|_| anyhow!("encoding key"))?;
        let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        Ok(format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        ))
    }

    /// Signs `claims` with RS256 under this key's id.
    pub fn sign(&self, claims: &Value) -> Result<String> {
        let header = json!({ "alg": "RS256", "typ": "JWT", "kid": self.kid });
        let signing_input = format!("{}.{}", encode_part(&header), encode_part(claims));
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| anyhow!("signing failed"))?;
        Ok(format!("{signing_input}.{}", B64.encode(signature)))
    }
}

/// base64url(JSON) of one token part.
pub fn encode_part(value: &Value) -> String {
    B64.encode(serde_json::to_vec(value).unwrap_or_default())
}

/// What goes into a token. [`TokenSpec::new`] gives a valid Clerk-like session token; tests
/// change one field to make it invalid in one way.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub sub: String,
    pub iss: String,
    pub azp: Option<String>,
    /// Seconds from now (negative: in the past).
    pub expires_in: i64,
    /// Seconds from now for `nbf` (negative: already valid).
    pub not_before_in: i64,
}

impl TokenSpec {
    pub fn new(issuer: &TokenIssuer, sub: &str) -> Self {
        Self {
            sub: sub.to_owned(),
            iss: issuer.issuer_url.clone(),
            azp: Some(LOCAL_AZP.to_owned()),
            expires_in: 60,
            not_before_in: -10,
        }
    }

    /// The claims of a Clerk v2 session token.
    pub fn claims(&self) -> Value {
        let now = chrono::Utc::now().timestamp();
        let mut claims = json!({
            "sub": self.sub,
            "iss": self.iss,
            "iat": now,
            "nbf": now + self.not_before_in,
            "exp": now + self.expires_in,
            "sid": format!("sess_{}", now),
            "jti": format!("jti_{now}_{}", self.sub),
            "v": 2,
            "fva": [0, -1],
        });
        if let Some(azp) = &self.azp {
            claims["azp"] = json!(azp);
        }
        claims
    }
}

/// The origin local tokens are issued for (an authorized party of the local configuration).
pub const LOCAL_AZP: &str = "http://localhost:3000";

/// Signing keys plus a JWKS endpoint on 127.0.0.1.
#[derive(Clone)]
pub struct TokenIssuer {
    /// The `iss` of its tokens (its own base URL, as Clerk's Frontend API URL is).
    pub issuer_url: String,
    pub jwks_url: String,
    keys: Arc<Mutex<Vec<Arc<SigningKey>>>>,
    fetches: Arc<AtomicUsize>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer_url", &self.issuer_url)
            .finish()
    }
}

impl TokenIssuer {
    /// A new issuer with a new key, serving its JWKS on a free port.
    pub fn start() -> Result<Self> {
        Self::start_with(SigningKey::generate()?, "127.0.0.1:0".parse()?)
    }

    /// An issuer with the given key, serving its JWKS on `addr`. The server runs on a thread of
    /// its own, so it outlives any one async runtime (each test has its own).
    pub fn start_with(key: SigningKey, addr: SocketAddr) -> Result<Self> {
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("binding the token issuer to {addr}"))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let issuer_url = format!("http://127.0.0.1:{port}");
        let issuer = Self {
            jwks_url: format!("{issuer_url}/.well-known/jwks.json"),
            issuer_url,
            keys: Arc::new(Mutex::new(vec![Arc::new(key)])),
            fetches: Arc::new(AtomicUsize::new(0)),
        };
        // Runtime and listener are made here, so their failures reach the caller; the thread
        // only serves.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("token issuer runtime")?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener).context("token issuer listener")?
        };
        let app = axum::Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .with_state(issuer.clone());
        std::thread::Builder::new()
            .name("token-issuer".into())
            .spawn(move || {
                runtime.block_on(async move {
                    if let Err(err) = axum::serve(listener, app).await {
                        eprintln!("token issuer stopped: {err}");
                    }
                });
            })?;
        Ok(issuer)
    }

    /// The issuer shared by every test of this process.
    pub fn shared() -> Result<&'static Self> {
        static SHARED: OnceLock<Result<TokenIssuer, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::start().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| anyhow!("token issuer unavailable: {e}"))
    }

    /// The key new tokens are signed with (the newest).
    pub fn current_key(&self) -> Arc<SigningKey> {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.last().cloned().expect("an issuer always has a key")
    }

    /// Adds a new key (new `kid`) to the JWKS and signs with it from now on, as a key rotation.
    pub fn rotate(&self) -> Result<Arc<SigningKey>> {
        let key = Arc::new(SigningKey::generate()?);
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(key.clone());
        Ok(key)
    }

    /// How many times the JWKS has been fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// A valid session token for `sub`.
    pub fn token(&self, sub: &str) -> Result<String> {
        self.mint(&TokenSpec::new(self, sub))
    }

    /// A token for `spec`, signed with the current key.
    pub fn mint(&self, spec: &TokenSpec) -> Result<String> {
        self.current_key().sign(&spec.claims())
    }

    /// The environment a function needs to verify this issuer's tokens.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("CLERK_ISSUER".into(), self.issuer_url.clone()),
            ("CLERK_JWKS_URL".into(), self.jwks_url.clone()),
            ("CLERK_AUTHORIZED_PARTIES".into(), LOCAL_AZP.into()),
        ]
    }
}

async fn jwks(State(issuer): State<TokenIssuer>) -> Json<Value> {
    issuer.fetches.fetch_add(1, Ordering::SeqCst);
    let keys: Vec<Value> = issuer
        .keys
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|k| k.jwk())
        .collect();
    Json(json!({ "keys": keys }))
}
