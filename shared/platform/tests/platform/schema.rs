//! The schema of migrations/, checked on a freshly migrated database.

use alphalab_devstack::pg::TestDatabase;
use sqlx::PgPool;

/// A pool on a fresh database, and the database (dropped with it on an external server, so
/// keep it alive for the test).
async fn pool() -> (PgPool, TestDatabase) {
    let db = TestDatabase::create().await.expect("test database");
    (PgPool::connect(&db.url).await.unwrap(), db)
}

const TABLES: [&str; 20] = [
    "users",
    "user_settings",
    "api_keys",
    "agents",
    "test_sessions",
    "trades",
    "ai_thoughts",
    "test_results",
    "certificates",
    "notifications",
    "activity_log",
    "market_data_cache",
    "webhook_deliveries",
    "decision_cache",
    "session_equity",
    "market_data_gaps",
    "exchange_backoff",
    "exchange_clock",
    "result_ledgers",
    "ledger_keys",
];

#[tokio::test]
async fn every_table_exists_and_every_user_owned_row_cascades() {
    let (pool, _db) = pool().await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut expected: Vec<String> = TABLES.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(tables, expected);

    // every user_id column references users with ON DELETE CASCADE
    let owned: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT c.relname::text, con.confdeltype::text
         FROM pg_attribute a
         JOIN pg_class c ON c.oid = a.attrelid AND c.relkind = 'r'
         JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
         LEFT JOIN pg_constraint con ON con.conrelid = c.oid AND con.contype = 'f'
              AND a.attnum = ANY (con.conkey) AND con.confrelid = 'users'::regclass
         WHERE a.attname = 'user_id' AND NOT a.attisdropped ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(owned.len(), 13, "{owned:?}");
    for (table, action) in owned {
        assert_eq!(action.as_deref(), Some("c"), "{table}.user_id cascades");
    }
}

#[tokio::test]
async fn the_designs_unique_constraints_and_list_indexes_exist() {
    let (pool, _db) = pool().await;
    let indexes: Vec<String> =
        sqlx::query_scalar("SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public'")
            .fetch_all(&pool)
            .await
            .unwrap();
    for name in [
        "users_clerk_id_key",
        "api_keys_one_default_per_user",
        "agents_user_id_name_key",
        "ai_thoughts_session_candle_key",
        "test_results_session_key",
        "certificates_result_key",
        "certificates_verification_code_key",
        "market_data_cache_pkey",
        "agents_user_created",
        "api_keys_user_created",
        "test_sessions_user_created",
        "test_results_user_created",
        "certificates_user_created",
        "notifications_user_created",
        "activity_log_user_created",
    ] {
        assert!(indexes.iter().any(|i| i == name), "missing index {name}");
    }
    let session_columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'test_sessions'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for column in [
        "agent_snapshot",
        "config",
        "checkpoint",
        "cursor",
        "version",
    ] {
        assert!(
            session_columns.iter().any(|c| c == column),
            "test_sessions.{column}"
        );
    }
}

#[tokio::test]
async fn enumerated_columns_refuse_unknown_values() {
    let (pool, _db) = pool().await;
    let user: uuid::Uuid =
        sqlx::query_scalar("INSERT INTO users (clerk_id) VALUES ('u') RETURNING id")
            .fetch_one(&pool)
            .await
            .unwrap();
    let bad: [&'static str; 8] = [
        "UPDATE users SET plan = 'platinum' WHERE id = $1",
        "INSERT INTO user_settings (user_id, theme) VALUES ($1, 'neon')",
        "INSERT INTO agents (user_id, name, mode, model, strategy_prompt) VALUES ($1, 'a', 'zen', 'm', 's')",
        "INSERT INTO test_sessions (user_id, type, asset, timeframe, starting_capital, agent_snapshot, config)
         VALUES ($1, 'paper', 'BTCUSDT', '1h', 1, '{}', '{}')",
        "INSERT INTO test_sessions (user_id, type, status, asset, timeframe, starting_capital, agent_snapshot, config)
         VALUES ($1, 'backtest', 'sleeping', 'BTCUSDT', '1h', 1, '{}', '{}')",
        "INSERT INTO notifications (user_id, type, title, message) VALUES ($1, 'spam', 't', 'm')",
        "INSERT INTO activity_log (user_id, action) VALUES ($1, 'hacked')",
        "INSERT INTO user_settings (user_id, max_leverage) VALUES ($1, 9)",
    ];
    for sql in bad {
        let err = sqlx::query(sql)
            .bind(user)
            .execute(&pool)
            .await
            .expect_err(sql);
        let code = err.as_database_error().and_then(|e| e.code()).unwrap();
        assert_eq!(code, "23514", "{sql}: a CHECK violation");
    }
    // one default key per user
    let key =
        "INSERT INTO api_keys (user_id, name, encrypted_key, key_version, masked_key, is_default)
               VALUES ($1, 'k', '\\x00', 1, 'm', true)";
    sqlx::query(key).bind(user).execute(&pool).await.unwrap();
    let err = sqlx::query(key)
        .bind(user)
        .execute(&pool)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).unwrap(),
        "23505"
    );
}

/// Every foreign key from a user-owned table to another user-owned table (not `users` itself)
/// includes `user_id` on both sides, so a row can only point at rows of its own user.
#[tokio::test]
async fn every_reference_between_user_owned_rows_is_scoped_by_the_user() {
    let (pool, _db) = pool().await;
    let references: Vec<(String, String, String, bool)> = sqlx::query_as(
        "SELECT con.conname::text, c.relname::text, r.relname::text,
                EXISTS (SELECT 1 FROM unnest(con.conkey, con.confkey) AS k(a, b)
                        JOIN pg_attribute ca ON ca.attrelid = con.conrelid AND ca.attnum = k.a
                        JOIN pg_attribute ra ON ra.attrelid = con.confrelid AND ra.attnum = k.b
                        WHERE ca.attname = 'user_id' AND ra.attname = 'user_id')
         FROM pg_constraint con
         JOIN pg_class c ON c.oid = con.conrelid
         JOIN pg_class r ON r.oid = con.confrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
         WHERE con.contype = 'f' AND r.relname <> 'users'
           AND EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = con.confrelid AND a.attname = 'user_id')
         ORDER BY 2, 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let names: Vec<&str> = references.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "agents_api_key_owner_fkey",
            "ai_thoughts_session_owner_fkey",
            "certificates_result_owner_fkey",
            "result_ledgers_result_owner_fkey",
            "session_equity_session_owner_fkey",
            "test_results_agent_owner_fkey",
            "test_results_session_owner_fkey",
            "test_sessions_agent_owner_fkey",
            "trades_session_owner_fkey",
        ]
    );
    for (name, child, parent, scoped) in &references {
        assert!(scoped, "{name}: {child} -> {parent} must include user_id");
    }
}

#[tokio::test]
async fn a_row_cannot_point_at_another_users_row() {
    let (pool, _db) = pool().await;
    let user = |clerk: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, uuid::Uuid>(
                "INSERT INTO users (clerk_id) VALUES ($1) RETURNING id",
            )
            .bind(clerk)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let (alice, mallory) = (user("alice").await, user("mallory").await);
    let key: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO api_keys (user_id, name, encrypted_key, key_version, masked_key)
         VALUES ($1, 'k', '\\x00', 1, 'm') RETURNING id",
    )
    .bind(alice)
    .fetch_one(&pool)
    .await
    .unwrap();
    let agent = "INSERT INTO agents (user_id, name, mode, model, strategy_prompt, api_key_id)
                 VALUES ($1, 'a', 'omni', 'openai/gpt-4o', 's', $2) RETURNING id";
    let err = sqlx::query(agent)
        .bind(mallory)
        .bind(key)
        .execute(&pool)
        .await
        .unwrap_err();
    let db = err.as_database_error().unwrap();
    assert_eq!(db.constraint(), Some("agents_api_key_owner_fkey"));
    // the HTTP layer answers it as a 422 naming the field, like a key that does not exist
    let api = platform::ApiError::from(err);
    assert_eq!(api.status(), 422);
    assert_eq!(
        api.to_string(),
        "invalid request: api_key_id: API key not found"
    );

    // the owner may; deleting the key then only clears the agent's reference
    let agent_id: uuid::Uuid = sqlx::query_scalar(agent)
        .bind(alice)
        .bind(key)
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM api_keys WHERE id = $1")
        .bind(key)
        .execute(&pool)
        .await
        .unwrap();
    let (owner, key_ref): (uuid::Uuid, Option<uuid::Uuid>) =
        sqlx::query_as("SELECT user_id, api_key_id FROM agents WHERE id = $1")
            .bind(agent_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((owner, key_ref), (alice, None));
}

/// Each constraint the HTTP layer maps to a client error exists under that name.
#[tokio::test]
async fn every_mapped_constraint_exists() {
    let (pool, _db) = pool().await;
    for c in platform::error::CONSTRAINTS {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = $1)
                 OR EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = $1)",
        )
        .bind(c.name)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(exists, "{} is mapped but not in the schema", c.name);
    }
}
