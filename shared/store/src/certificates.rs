//! Certificates (issue 23): one per result, issued by its owner, verified by anyone who has the
//! code. The row keeps the snapshot and digest as certified; the verify route recomputes the
//! digest from the result and trades as stored now.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{Cursor, activity};

/// A certificate as its owner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Certificate {
    pub id: Uuid,
    pub result_id: Uuid,
    /// 16 Crockford base32 characters in four groups: `XXXX-XXXX-XXXX-XXXX`.
    pub verification_code: String,
    /// `{PUBLIC_APP_URL}/verify/{verification_code}`.
    pub share_url: String,
    /// What was certified (see the README: the snapshot's keys and their canonical form).
    #[schema(value_type = Object)]
    pub snapshot: Value,
    /// Lowercase hex SHA-256 of the RFC 8785 form of `snapshot`.
    pub digest: String,
    /// Verify answers given so far.
    pub view_count: i64,
    pub issued_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, result_id, verification_code, share_url, snapshot, digest, view_count,
                       issued_at, created_at";

/// A certificate to issue.
#[derive(Debug, Clone)]
pub struct NewCertificate<'a> {
    pub result_id: Uuid,
    pub verification_code: &'a str,
    pub share_url: &'a str,
    pub snapshot: &'a Value,
    pub digest: &'a str,
    pub issued_at: DateTime<Utc>,
}

/// What an issue did.
#[derive(Debug, Clone, PartialEq)]
pub enum Issued {
    /// This request issued it.
    Created(Certificate),
    /// The result already had one (maybe issued by a concurrent request): it.
    Existing(Certificate),
    /// The verification code is taken by another certificate: draw another.
    CodeTaken,
}

/// Issues `new` for the caller's result with its `certificate_issued` activity entry and
/// notification (unless `notify_certificate_issued` is off), in one transaction; exactly one
/// certificate per result, whatever the concurrency.
pub async fn issue(
    pool: &PgPool,
    user_id: Uuid,
    new: &NewCertificate<'_>,
) -> Result<Issued, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let created: Option<Certificate> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO certificates (user_id, result_id, verification_code, share_url, snapshot,
             digest, issued_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
         ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
    )))
    .bind(user_id)
    .bind(new.result_id)
    .bind(new.verification_code)
    .bind(new.share_url)
    .bind(new.snapshot)
    .bind(new.digest)
    .bind(new.issued_at)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(certificate) = created else {
        tx.rollback().await?;
        return Ok(match for_result(pool, user_id, new.result_id).await? {
            Some(existing) => Issued::Existing(existing),
            None => Issued::CodeTaken,
        });
    };
    let data = serde_json::json!({
        "certificate_id": certificate.id,
        "result_id": certificate.result_id,
        "verification_code": certificate.verification_code,
    });
    activity::record(
        &mut tx,
        user_id,
        "certificate_issued",
        "certificate",
        certificate.id,
        data.clone(),
    )
    .await?;
    sqlx::query(
        "INSERT INTO notifications (user_id, type, title, message, data)
         SELECT $1, 'certificate_issued', 'Certificate issued', $2, $3 FROM user_settings
         WHERE user_id = $1 AND notify_certificate_issued",
    )
    .bind(user_id)
    .bind(format!(
        "Certificate {} is ready to share: {}",
        certificate.verification_code, certificate.share_url
    ))
    .bind(data)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Issued::Created(certificate))
}

/// The certificate of the caller's result, if it has one.
pub async fn for_result(
    pool: &PgPool,
    user_id: Uuid,
    result_id: Uuid,
) -> Result<Option<Certificate>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM certificates WHERE user_id = $1 AND result_id = $2"
    )))
    .bind(user_id)
    .bind(result_id)
    .fetch_optional(pool)
    .await
}

/// The caller's certificate `id`.
pub async fn get(
    pool: &PgPool,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<Certificate>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM certificates WHERE user_id = $1 AND id = $2"
    )))
    .bind(user_id)
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The caller's certificates, newest first, after `cursor`; the next page's cursor.
pub async fn list(
    pool: &PgPool,
    user_id: Uuid,
    cursor: Option<&Cursor>,
    limit: i64,
) -> Result<(Vec<Certificate>, Option<Cursor>), sqlx::Error> {
    let mut rows: Vec<Certificate> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM certificates
         WHERE user_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
         ORDER BY created_at DESC, id DESC LIMIT $4"
    )))
    .bind(user_id)
    .bind(cursor.map(|c| c.created_at))
    .bind(cursor.map(|c| c.id).unwrap_or_default())
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let next = crate::page::cut(&mut rows, limit, |c| Cursor {
        created_at: c.created_at,
        id: c.id,
    });
    Ok((rows, next))
}

/// The certificate with `code`, its view counted, and the user whose result it certifies (to
/// recompute the digest from their rows; never shown).
pub async fn view(pool: &PgPool, code: &str) -> Result<Option<(Certificate, Uuid)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        certificate: Certificate,
        user_id: Uuid,
    }
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE certificates SET view_count = view_count + 1 WHERE verification_code = $1
         RETURNING {COLUMNS}, user_id"
    )))
    .bind(code)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| (r.certificate, r.user_id)))
}
