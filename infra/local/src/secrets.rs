//! Development secrets of the local stack, generated once and kept under the data dir, readable
//! by their owner only (0600 in a 0700 directory): the encryption keys of users' API keys and the
//! Clerk webhook signing secret. Set `ENCRYPTION_KEYS` / `CLERK_WEBHOOK_SECRET` to use your own.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub(crate) fn path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("secrets").join(name)
}

/// The secret in `data_dir/secrets/<name>`, created with `generate` when absent.
pub(crate) fn load_or_create(
    data_dir: &Path,
    name: &str,
    generate: impl FnOnce() -> Result<String>,
) -> Result<String> {
    let path = path(data_dir, name);
    if path.is_file() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return Ok(text.trim().to_owned());
    }
    let value = generate()?;
    write_private(&path, value.as_bytes())?;
    Ok(value)
}

/// Writes a new file readable by its owner only (0600, in a 0700 directory); an existing file
/// is an error, never overwritten.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("a file needs a directory")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

/// A new Svix-style secret: `whsec_` and 32 random bytes in base64.
pub(crate) fn webhook_secret() -> Result<String> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("no system randomness"))?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// Stores the OpenRouter key `plaintext` of `user`, named `name`, sealed with the active version
/// of `ENCRYPTION_KEYS` in `env` as the api-keys function seals it; its id.
pub(crate) async fn store_key(
    pool: &sqlx::PgPool,
    env: &platform::Env<'_>,
    user: uuid::Uuid,
    name: &str,
    plaintext: &str,
) -> Result<uuid::Uuid> {
    let keys = adapters::crypto::Keyring::parse(&env.require("ENCRYPTION_KEYS")?)
        .map_err(|e| anyhow::anyhow!(e))?;
    let id = uuid::Uuid::new_v4();
    let sealed = keys.seal(user, id, plaintext)?;
    store::api_keys::insert(
        pool,
        user,
        &store::api_keys::NewKey {
            id,
            name,
            masked_key: &store::api_keys::mask(plaintext),
            encrypted_key: &sealed.bytes,
            key_version: sealed.version,
        },
    )
    .await?;
    Ok(id)
}
