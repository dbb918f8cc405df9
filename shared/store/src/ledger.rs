//! A result's signed ledger (`result_ledgers`): the exact bytes that were hashed and signed, in
//! chunks of consecutive lines, written with the result; and the keys that signed them
//! (`ledger_keys`, kept across rotations).

use sqlx::PgPool;
use uuid::Uuid;

/// Lines per stored chunk.
pub const CHUNK_LINES: usize = 1_000;

/// One stored chunk of a ledger.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Chunk {
    pub chunk: i32,
    /// 0-based number of its first line.
    pub first_line: i32,
    pub lines: i32,
    /// The lines, joined by `\n`.
    pub body: String,
}

/// A ledger's lines in chunks of [`CHUNK_LINES`].
pub fn chunks(lines: &[String]) -> Vec<Chunk> {
    lines
        .chunks(CHUNK_LINES)
        .enumerate()
        .map(|(i, part)| Chunk {
            chunk: i as i32,
            first_line: (i * CHUNK_LINES) as i32,
            lines: part.len() as i32,
            body: part.join("\n"),
        })
        .collect()
}

/// Stores a result's ledger and records the key that signed it (in the result's transaction).
pub async fn insert(
    tx: &mut sqlx::PgConnection,
    user_id: Uuid,
    result_id: Uuid,
    chunks: &[Chunk],
    key_id: &str,
    public_key: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ledger_keys (key_id, public_key) VALUES ($1, $2)
         ON CONFLICT (key_id) DO NOTHING",
    )
    .bind(key_id)
    .bind(public_key)
    .execute(&mut *tx)
    .await?;
    let numbers: Vec<i32> = chunks.iter().map(|c| c.chunk).collect();
    let firsts: Vec<i32> = chunks.iter().map(|c| c.first_line).collect();
    let counts: Vec<i32> = chunks.iter().map(|c| c.lines).collect();
    let bodies: Vec<&str> = chunks.iter().map(|c| c.body.as_str()).collect();
    sqlx::query(
        "INSERT INTO result_ledgers (result_id, user_id, chunk, first_line, lines, body)
         SELECT $1, $2, * FROM unnest($3::int[], $4::int[], $5::int[], $6::text[])",
    )
    .bind(result_id)
    .bind(user_id)
    .bind(&numbers)
    .bind(&firsts)
    .bind(&counts)
    .bind(&bodies)
    .execute(&mut *tx)
    .await
    .map(drop)
}

/// One page of a ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub lines: Vec<String>,
    /// The first line of the next page (`None`: this page ends the ledger).
    pub next: Option<i64>,
}

/// Up to `limit` lines of `user_id`'s result's ledger from line `from` (0-based), no more than
/// `max_bytes` of them with their newlines (always at least one line). `None` when the user has
/// no such result, or the result has no ledger (written before ledgers existed).
pub async fn page(
    pool: &PgPool,
    user_id: Uuid,
    result_id: Uuid,
    from: i64,
    limit: i64,
    max_bytes: usize,
) -> Result<Option<Page>, sqlx::Error> {
    let total: Option<i64> = sqlx::query_scalar(
        "SELECT sum(lines)::bigint FROM result_ledgers WHERE user_id = $1 AND result_id = $2",
    )
    .bind(user_id)
    .bind(result_id)
    .fetch_one(pool)
    .await?;
    let Some(total) = total else {
        return Ok(None);
    };
    let rows: Vec<Chunk> = sqlx::query_as(
        "SELECT chunk, first_line, lines, body FROM result_ledgers
         WHERE user_id = $1 AND result_id = $2
           AND first_line + lines > $3 AND first_line < $3 + $4
         ORDER BY chunk",
    )
    .bind(user_id)
    .bind(result_id)
    .bind(from)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut lines = Vec::new();
    let mut bytes = 0;
    let mut at = from;
    'chunks: for c in rows {
        for (i, line) in c.body.split('\n').enumerate() {
            let n = i64::from(c.first_line) + i as i64;
            if n < at {
                continue;
            }
            if lines.len() as i64 >= limit
                || (!lines.is_empty() && bytes + line.len() + 1 > max_bytes)
            {
                break 'chunks;
            }
            bytes += line.len() + 1;
            lines.push(line.to_owned());
            at = n + 1;
        }
    }
    Ok(Some(Page {
        lines,
        next: (at < total).then_some(at),
    }))
}

/// A key that signed ledgers.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Key {
    pub key_id: String,
    /// `Ed25519`.
    pub algorithm: String,
    /// Base64 of the 32 raw public key bytes.
    pub public_key: String,
}

/// Every key that signed a ledger, oldest first.
pub async fn keys(pool: &PgPool) -> Result<Vec<Key>, sqlx::Error> {
    sqlx::query_as(
        "SELECT key_id, algorithm, public_key FROM ledger_keys ORDER BY created_at, key_id",
    )
    .fetch_all(pool)
    .await
}
