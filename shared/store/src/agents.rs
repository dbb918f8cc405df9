//! Agents: an LLM (or a baseline), a strategy prompt, a mode and indicators. Names are unique
//! among a user's live agents; an agent that has sessions is archived, not deleted, so results
//! keep their snapshot. Listing is newest first with a keyset cursor.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{Cursor, FieldError, ReadOnly, activity};

/// Longest agent name, in characters.
pub const NAME_MAX: usize = 64;
/// Longest strategy prompt, in characters.
pub const PROMPT_MAX: usize = 8_000;
pub const MODES: &[&str] = &["monk", "omni"];

/// An agent as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Agent {
    pub id: Uuid,
    pub name: String,
    /// `monk` or `omni`.
    pub mode: String,
    /// An OpenRouter model id (`vendor/model[:variant]`) or a baseline (`baseline/sma-cross`).
    pub model: String,
    pub indicators: Vec<String>,
    pub strategy_prompt: String,
    /// The key the agent uses; `null`: the user's default key (none needed for a baseline).
    pub api_key_id: Option<Uuid>,
    /// Sampling temperature of the model calls, 0..2 (default 0.3).
    pub temperature: f64,
    pub archived_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Sessions run with the agent.
    pub test_count: i64,
    /// Best total PnL % among its results.
    pub best_pnl_pct: Option<f64>,
    /// When its last session started.
    pub last_tested_at: Option<DateTime<Utc>>,
}

macro_rules! agent_select {
    () => {
        "SELECT a.id, a.name, a.mode, a.model, a.indicators, a.strategy_prompt, a.api_key_id,
                a.temperature, a.archived_at, a.created_at, a.updated_at,
                s.test_count, r.best_pnl_pct, s.last_tested_at
         FROM agents a
         LEFT JOIN LATERAL (SELECT count(*) AS test_count, max(t.created_at) AS last_tested_at
                            FROM test_sessions t
                            WHERE t.user_id = a.user_id AND t.agent_id = a.id) s ON true
         LEFT JOIN LATERAL (SELECT max(x.total_pnl_pct) AS best_pnl_pct
                            FROM test_results x
                            WHERE x.user_id = a.user_id AND x.agent_id = a.id) r ON true "
    };
}

/// `Some(value)` for a present field, even `null` (so an update can clear it).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A new agent. Unknown fields are refused.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    /// 1..64 characters (surrounding spaces are trimmed).
    #[schema(pattern = "\\S", max_length = 64)]
    pub name: String,
    /// `monk` or `omni`.
    #[schema(pattern = "^\\s*(monk|omni)\\s*$")]
    pub mode: String,
    pub model: String,
    /// Indicator names the engine accepts; a baseline's own are used when absent.
    #[serde(default)]
    pub indicators: Option<Vec<String>>,
    /// 1..8,000 characters; a baseline needs none.
    #[serde(default)]
    pub strategy_prompt: Option<String>,
    /// One of the caller's keys; absent: the default key at run time.
    #[serde(default)]
    pub api_key_id: Option<Uuid>,
    /// Sampling temperature, 0..2 (default 0.3).
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub temperature: Option<f64>,
}

/// A partial update: the given fields change. Read-only fields of [`Agent`] are accepted and
/// ignored; anything else is refused by name. `api_key_id: null` goes back to the default key.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentUpdate {
    pub name: Option<String>,
    pub mode: Option<String>,
    pub model: Option<String>,
    pub indicators: Option<Vec<String>>,
    pub strategy_prompt: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub api_key_id: Option<Option<Uuid>>,
    pub temperature: Option<f64>,
    // read-only fields of `Agent`
    pub id: Option<ReadOnly>,
    pub archived_at: Option<ReadOnly>,
    pub created_at: Option<ReadOnly>,
    pub updated_at: Option<ReadOnly>,
    pub test_count: Option<ReadOnly>,
    pub best_pnl_pct: Option<ReadOnly>,
    pub last_tested_at: Option<ReadOnly>,
}

/// The fields of an agent as they will be stored, validated together.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentFields {
    pub name: String,
    pub mode: String,
    pub model: String,
    pub indicators: Vec<String>,
    pub strategy_prompt: String,
    pub api_key_id: Option<Uuid>,
    pub temperature: f64,
}

/// The temperature an agent gets when none is given.
pub const DEFAULT_TEMPERATURE: f64 = 0.3;

impl NewAgent {
    /// The fields to store (trimmed, a baseline's indicators filled in), or every invalid one.
    pub fn fields(self) -> Result<AgentFields, Vec<FieldError>> {
        let baseline = engine::baseline::Kind::from_model(self.model.trim());
        let indicators = self.indicators.unwrap_or_else(|| {
            baseline
                .map(|k| {
                    k.required_indicators()
                        .iter()
                        .map(|s| s.to_string())
                        .collect()
                })
                .unwrap_or_default()
        });
        let fields = AgentFields {
            name: self.name.trim().to_owned(),
            mode: self.mode.trim().to_owned(),
            model: self.model.trim().to_owned(),
            indicators,
            strategy_prompt: self.strategy_prompt.unwrap_or_default().trim().to_owned(),
            api_key_id: self.api_key_id,
            temperature: self.temperature.unwrap_or(DEFAULT_TEMPERATURE),
        };
        let errors = fields.validate();
        if errors.is_empty() {
            Ok(fields)
        } else {
            Err(errors)
        }
    }
}

impl AgentUpdate {
    /// `current` with this update applied, or every invalid field.
    pub fn apply_to(self, current: &Agent) -> Result<AgentFields, Vec<FieldError>> {
        let fields = AgentFields {
            name: self
                .name
                .map_or(current.name.clone(), |n| n.trim().to_owned()),
            mode: self
                .mode
                .map_or(current.mode.clone(), |m| m.trim().to_owned()),
            model: self
                .model
                .map_or(current.model.clone(), |m| m.trim().to_owned()),
            indicators: self
                .indicators
                .unwrap_or_else(|| current.indicators.clone()),
            strategy_prompt: self
                .strategy_prompt
                .map_or(current.strategy_prompt.clone(), |p| p.trim().to_owned()),
            api_key_id: self.api_key_id.unwrap_or(current.api_key_id),
            temperature: self.temperature.unwrap_or(current.temperature),
        };
        let errors = fields.validate();
        if errors.is_empty() {
            Ok(fields)
        } else {
            Err(errors)
        }
    }
}

/// `vendor/model` with an optional `:variant`, as OpenRouter names models.
fn is_model_id(model: &str) -> bool {
    let part = |s: &str, first_lower: bool| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| {
            c.is_ascii_digit()
                || if first_lower {
                    c.is_ascii_lowercase()
                } else {
                    c.is_ascii_alphanumeric()
                }
        }) && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    let (id, variant) = match model.split_once(':') {
        Some((id, variant)) => (id, Some(variant)),
        None => (model, None),
    };
    let Some((vendor, name)) = id.split_once('/') else {
        return false;
    };
    model.len() <= 128
        && part(vendor, true)
        && part(name, false)
        && variant.is_none_or(|v| part(v, true))
}

impl AgentFields {
    /// Every invalid field, named, with the valid values where there is a list.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let name_len = self.name.chars().count();
        if name_len == 0 || name_len > NAME_MAX {
            errors.push(FieldError::new(
                "name",
                format!("must be 1 to {NAME_MAX} characters"),
            ));
        }
        if !MODES.contains(&self.mode.as_str()) {
            errors.push(FieldError::new("mode", "must be one of monk, omni"));
        }
        let baseline = engine::baseline::Kind::from_model(&self.model);
        if self.model.starts_with("baseline/") && baseline.is_none() {
            errors.push(FieldError::new(
                "model",
                format!(
                    "unknown baseline; the baselines are {}",
                    engine::baseline::Kind::NAMES.join(", ")
                ),
            ));
        } else if baseline.is_none() && !is_model_id(&self.model) {
            errors.push(FieldError::new(
                "model",
                format!(
                    "must be an OpenRouter model id (vendor/model, optionally :variant) or one of {}",
                    engine::baseline::Kind::NAMES.join(", ")
                ),
            ));
        }
        if self.indicators.is_empty() {
            // a baseline that reads no indicator (buy-and-hold) needs none
            if baseline.is_none_or(|k| !k.required_indicators().is_empty()) {
                errors.push(FieldError::new(
                    "indicators",
                    "must name at least one indicator",
                ));
            }
        } else if let Err(e) = engine::IndicatorSet::new(&self.indicators) {
            errors.push(FieldError::new("indicators", e.to_string()));
        }
        let prompt_len = self.strategy_prompt.chars().count();
        if prompt_len > PROMPT_MAX || (prompt_len == 0 && baseline.is_none()) {
            errors.push(FieldError::new(
                "strategy_prompt",
                format!("must be 1 to {PROMPT_MAX} characters (a baseline needs none)"),
            ));
        }
        if !(self.temperature.is_finite() && (0.0..=2.0).contains(&self.temperature)) {
            errors.push(FieldError::new("temperature", "must be between 0 and 2"));
        }
        errors
    }
}

/// The caller's agents, newest first, `limit` from `after`; the cursor of the next page.
pub async fn list(
    pool: &PgPool,
    user_id: Uuid,
    include_archived: bool,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<(Vec<Agent>, Option<Cursor>), sqlx::Error> {
    let mut agents: Vec<Agent> = sqlx::query_as(concat!(
        agent_select!(),
        "WHERE a.user_id = $1 AND ($2 OR a.archived_at IS NULL)
           AND ($3::timestamptz IS NULL OR (a.created_at, a.id) < ($3, $4))
         ORDER BY a.created_at DESC, a.id DESC LIMIT $5"
    ))
    .bind(user_id)
    .bind(include_archived)
    .bind(after.map(|c| c.created_at))
    .bind(after.map(|c| c.id))
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let next = crate::page::cut(&mut agents, limit, |a| crate::Cursor {
        created_at: a.created_at,
        id: a.id,
    });
    Ok((agents, next))
}

pub async fn find(pool: &PgPool, user_id: Uuid, id: Uuid) -> Result<Option<Agent>, sqlx::Error> {
    sqlx::query_as(concat!(
        agent_select!(),
        "WHERE a.user_id = $1 AND a.id = $2"
    ))
    .bind(user_id)
    .bind(id)
    .fetch_optional(pool)
    .await
}

async fn insert_row(
    conn: &mut sqlx::PgConnection,
    user_id: Uuid,
    f: &AgentFields,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO agents (user_id, name, mode, model, indicators, strategy_prompt, api_key_id, temperature)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(user_id)
    .bind(&f.name)
    .bind(&f.mode)
    .bind(&f.model)
    .bind(&f.indicators)
    .bind(&f.strategy_prompt)
    .bind(f.api_key_id)
    .bind(f.temperature)
    .fetch_one(conn)
    .await
}

/// Creates an agent; records `agent_created` (or `agent_duplicated` with its source).
pub async fn create(
    pool: &PgPool,
    user_id: Uuid,
    fields: &AgentFields,
    duplicated_from: Option<Uuid>,
) -> Result<Agent, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let id = insert_row(&mut tx, user_id, fields).await?;
    let (action, details) = match duplicated_from {
        Some(source) => (
            "agent_duplicated",
            serde_json::json!({ "name": fields.name, "source_id": source }),
        ),
        None => (
            "agent_created",
            serde_json::json!({ "name": fields.name, "model": fields.model }),
        ),
    };
    activity::record(&mut tx, user_id, action, "agent", id, details).await?;
    tx.commit().await?;
    find(pool, user_id, id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

/// Stores `fields` over the caller's live agent `id`; records `agent_updated`.
pub async fn update(
    pool: &PgPool,
    user_id: Uuid,
    id: Uuid,
    f: &AgentFields,
) -> Result<Option<Agent>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE agents SET name = $3, mode = $4, model = $5, indicators = $6,
             strategy_prompt = $7, api_key_id = $8, temperature = $9, updated_at = now()
         WHERE user_id = $1 AND id = $2 AND archived_at IS NULL RETURNING id",
    )
    .bind(user_id)
    .bind(id)
    .bind(&f.name)
    .bind(&f.mode)
    .bind(&f.model)
    .bind(&f.indicators)
    .bind(&f.strategy_prompt)
    .bind(f.api_key_id)
    .bind(f.temperature)
    .fetch_optional(&mut *tx)
    .await?;
    if updated.is_none() {
        return Ok(None);
    }
    activity::record(
        &mut tx,
        user_id,
        "agent_updated",
        "agent",
        id,
        serde_json::json!({ "name": f.name }),
    )
    .await?;
    tx.commit().await?;
    find(pool, user_id, id).await
}

/// What deleting an agent did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// It had sessions: archived (hidden, its results keep their snapshot).
    Archived,
    Deleted,
    NotFound,
}

/// Archives the caller's agent `id` when it has sessions, else deletes it.
pub async fn remove(pool: &PgPool, user_id: Uuid, id: Uuid) -> Result<Removed, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let found: Option<(String, bool)> = sqlx::query_as(
        "SELECT name, EXISTS (SELECT 1 FROM test_sessions t WHERE t.user_id = $1 AND t.agent_id = $2)
         FROM agents WHERE user_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(user_id)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((name, has_sessions)) = found else {
        return Ok(Removed::NotFound);
    };
    let outcome = if has_sessions {
        sqlx::query(
            "UPDATE agents SET archived_at = COALESCE(archived_at, now()), updated_at = now()
             WHERE user_id = $1 AND id = $2",
        )
        .bind(user_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        Removed::Archived
    } else {
        sqlx::query("DELETE FROM agents WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        Removed::Deleted
    };
    let action = match outcome {
        Removed::Archived => "agent_archived",
        _ => "agent_deleted",
    };
    activity::record(
        &mut tx,
        user_id,
        action,
        "agent",
        id,
        serde_json::json!({ "name": name }),
    )
    .await?;
    tx.commit().await?;
    Ok(outcome)
}

/// The first free name among `<name> (copy)`, `<name> (copy 2)`, ... for the caller's live
/// agents, the base shortened so the whole fits in [`NAME_MAX`] characters.
pub async fn copy_name(pool: &PgPool, user_id: Uuid, name: &str) -> Result<String, sqlx::Error> {
    let taken: Vec<String> =
        sqlx::query_scalar("SELECT name FROM agents WHERE user_id = $1 AND archived_at IS NULL")
            .bind(user_id)
            .fetch_all(pool)
            .await?;
    let mut n = 1;
    loop {
        let suffix = if n == 1 {
            " (copy)".to_owned()
        } else {
            format!(" (copy {n})")
        };
        let room = NAME_MAX - suffix.chars().count();
        let base: String = name.chars().take(room).collect();
        let candidate = format!("{}{suffix}", base.trim_end());
        if !taken.contains(&candidate) {
            return Ok(candidate);
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(model: &str, prompt: &str, indicators: &[&str]) -> AgentFields {
        AgentFields {
            name: "Scalper".into(),
            mode: "omni".into(),
            model: model.into(),
            indicators: indicators.iter().map(|s| s.to_string()).collect(),
            strategy_prompt: prompt.into(),
            api_key_id: None,
            temperature: DEFAULT_TEMPERATURE,
        }
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect::<Vec<_>>()
    }

    #[test]
    fn model_ids_and_baselines() {
        for ok in [
            "openai/gpt-4o",
            "anthropic/claude-3.5-sonnet",
            "meta-llama/llama-3.1-8b-instruct:free",
            "x-ai/grok-2",
        ] {
            assert!(agent(ok, "p", &["rsi"]).validate().is_empty(), "{ok}");
        }
        assert!(
            agent("baseline/sma-cross", "", &["sma_10"])
                .validate()
                .is_empty()
        );
        for bad in [
            "gpt-4o",
            "/gpt",
            "openai/",
            "OpenAI/gpt",
            "openai/gpt 4",
            "a/b/c",
            "openai/gpt:",
        ] {
            assert_eq!(
                fields(agent(bad, "p", &["rsi"]).validate()),
                ["model"],
                "{bad}"
            );
        }
        let errors = agent("baseline/moon", "", &["rsi"]).validate();
        assert!(
            errors[0].message.contains("baseline/sma-cross"),
            "{errors:?}"
        );
    }

    #[test]
    fn every_rule_names_its_field_and_lists_valid_values() {
        let mut f = agent("openai/gpt-4o", "", &["vwap"]);
        f.name = " ".repeat(0);
        f.mode = "zen".into();
        let errors = f.validate();
        assert_eq!(
            fields(errors.clone()),
            ["name", "mode", "indicators", "strategy_prompt"]
        );
        assert!(errors[2].message.contains("valid: rsi"), "{:?}", errors[2]);
        assert_eq!(
            fields(agent("openai/gpt-4o", "p", &[]).validate()),
            ["indicators"]
        );
        let long = "x".repeat(PROMPT_MAX + 1);
        assert_eq!(
            fields(agent("openai/gpt-4o", &long, &["rsi"]).validate()),
            ["strategy_prompt"]
        );
        let mut f = agent("openai/gpt-4o", "p", &["rsi"]);
        f.name = "n".repeat(NAME_MAX + 1);
        assert_eq!(fields(f.validate()), ["name"]);
    }

    #[test]
    fn a_baseline_gets_its_own_indicators_and_needs_no_prompt() {
        let new: NewAgent = serde_json::from_value(serde_json::json!({
            "name": "  SMA  ", "mode": "omni", "model": "baseline/sma-cross"
        }))
        .unwrap();
        let f = new.fields().unwrap();
        assert_eq!(f.name, "SMA");
        assert_eq!(f.indicators, ["sma_10", "sma_30"]);
    }
}
