//! `alphalab token`: a development token signed with the local stack's issuer key.

use std::path::{Path, PathBuf};

use alphalab_devstack::{SigningKey, TokenSpec};
use anyhow::{Context, Result};

#[derive(clap::Args)]
pub(crate) struct TokenArgs {
    /// The Clerk user id (`sub`) to mint a token for.
    #[arg(default_value = crate::serve::DEMO_USER)]
    user: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 86_400)]
    ttl: i64,
    /// Data directory of the local stack.
    #[arg(long, env = "ALPHALAB_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Port of the local token issuer (its URL is the tokens' `iss`).
    #[arg(long, default_value_t = crate::serve::ISSUER_PORT)]
    issuer_port: u16,
}

pub(crate) fn run(args: TokenArgs) -> Result<()> {
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| crate::workspace_root().join(".data"));
    let key = load_key(&data_dir)?.with_context(|| {
        format!(
            "no local signing key in {}: run `alphalab serve` once first",
            data_dir.display()
        )
    })?;
    println!("{}", mint(&key, args.issuer_port, &args.user, args.ttl)?);
    Ok(())
}

pub(crate) fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("issuer").join("signing-key.der")
}

/// Writes the issuer key readable by its owner only (0600, in a 0700 directory).
pub(crate) fn save_key(data_dir: &Path, key: &SigningKey) -> Result<()> {
    crate::secrets::write_private(&key_path(data_dir), &key.to_pkcs8_der()?)
}

pub(crate) fn load_key(data_dir: &Path) -> Result<Option<SigningKey>> {
    let path = key_path(data_dir);
    if !path.is_file() {
        return Ok(None);
    }
    let der = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    SigningKey::from_pkcs8_der(&der).map(Some)
}

/// A token for `user` from the local issuer at `issuer_port`.
pub(crate) fn mint(key: &SigningKey, issuer_port: u16, user: &str, ttl: i64) -> Result<String> {
    let spec = TokenSpec {
        sub: user.to_owned(),
        iss: format!("http://127.0.0.1:{issuer_port}"),
        azp: Some(alphalab_devstack::issuer::LOCAL_AZP.to_owned()),
        expires_in: ttl,
        not_before_in: -10,
    };
    key.sign(&spec.claims())
}
