//! `alphalab rotate-keys`: re-encrypts every stored API key with the active version of
//! `ENCRYPTION_KEYS`. Rows already on the active version are left alone, so running it twice
//! changes nothing the second time; it works in batches, each row updated only if it still has
//! the version it was read with (a concurrent rotation or key change is never overwritten).

use std::path::PathBuf;

use adapters::crypto::{Keyring, Sealed};
use anyhow::{Context, Result};
use platform::{Env, FromEnv};
use secrecy::ExposeSecret;

#[derive(clap::Args)]
pub(crate) struct RotateArgs {
    /// Rows per batch.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    batch: i64,
    /// Data directory of the local stack (its development key is used when ENCRYPTION_KEYS is
    /// not set).
    #[arg(long, env = "ALPHALAB_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

/// What a rotation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Rotated {
    pub(crate) reencrypted: u64,
    pub(crate) skipped: u64,
}

pub(crate) async fn run(args: RotateArgs) -> Result<()> {
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| crate::workspace_root().join(".data"));
    let local = crate::secrets::path(&data_dir, "encryption-keys");
    let text = match std::env::var("ENCRYPTION_KEYS")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(text) => text,
        None if local.is_file() => std::fs::read_to_string(&local)?,
        None => anyhow::bail!(
            "ENCRYPTION_KEYS is required (or run `alphalab serve` once for a local key)"
        ),
    };
    let keys = Keyring::from_env(&Env::from_lookup(|name| {
        (name == "ENCRYPTION_KEYS").then(|| text.clone())
    }))?;
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL is required")?;
    let pool = sqlx::PgPool::connect(&url).await?;
    let done = rotate(&pool, &keys, args.batch).await?;
    println!(
        "{} keys re-encrypted with v{}; {} could not be decrypted and were left as they are",
        done.reencrypted,
        keys.active_version(),
        done.skipped
    );
    Ok(())
}

/// Re-encrypts, batch by batch, every row not on the active version.
pub(crate) async fn rotate(pool: &sqlx::PgPool, keys: &Keyring, batch: i64) -> Result<Rotated> {
    let mut done = Rotated::default();
    let mut failed: Vec<uuid::Uuid> = Vec::new();
    loop {
        let rows = store::api_keys::needing_rotation(
            pool,
            keys.active_version(),
            batch + failed.len() as i64,
        )
        .await?;
        let rows: Vec<_> = rows
            .into_iter()
            .filter(|r| !failed.contains(&r.id))
            .collect();
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let sealed = Sealed {
                version: row.key_version,
                bytes: row.encrypted_key.clone(),
            };
            let plain = match keys.open(row.user_id, row.id, &sealed) {
                Ok(plain) => plain,
                Err(e) => {
                    eprintln!("key {}: {e}", row.id);
                    failed.push(row.id);
                    done.skipped += 1;
                    continue;
                }
            };
            let resealed = keys.seal(row.user_id, row.id, plain.expose_secret())?;
            if store::api_keys::store_rotated(pool, &row, &resealed.bytes, resealed.version).await?
            {
                done.reencrypted += 1;
            }
        }
    }
    Ok(done)
}
