//! WebSocket connections and their subscriptions, in DynamoDB (DESIGN section 4): high churn, TTL,
//! no joins. `ConnectionsTable`: connection id -> user id (GSI `by_user`); `SubscriptionsTable`:
//! topic (`session#<id>`, `price#<asset>`) + connection id (GSI `by_connection`). Every row expires
//! with API Gateway's 2-hour connection limit, so a missed `$disconnect` cleans itself up.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use uuid::Uuid;

/// A connection lives at most 2 hours (API Gateway's limit): rows expire then.
pub const CONNECTION_TTL_SECS: i64 = 2 * 3600;

#[derive(Debug, thiserror::Error)]
#[error("connection registry: {0}")]
pub struct RegistryError(String);

fn err<E: std::error::Error>(e: E) -> RegistryError {
    RegistryError(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
}

/// The topic of a session's events.
pub fn session_topic(session_id: Uuid) -> String {
    format!("session#{session_id}")
}

/// The topic of an asset's prices.
pub fn price_topic(asset: &str) -> String {
    format!("price#{asset}")
}

#[derive(Debug, Clone)]
pub struct Registry {
    client: Client,
    connections: String,
    subscriptions: String,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// `attribute` of every live row `query` finds, through all its pages.
async fn all_pages(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    attribute: &str,
) -> Result<Vec<String>, RegistryError> {
    let now = now_secs();
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = query
            .clone()
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(err)?;
        out.extend(page.items().iter().filter_map(|i| {
            i.get(attribute)
                .and_then(|v| v.as_s().ok())
                .filter(|_| alive(i, now))
                .cloned()
        }));
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(out);
        }
    }
}

/// Whether a row's TTL has not passed (DynamoDB deletes expired rows only eventually).
fn alive(item: &std::collections::HashMap<String, AttributeValue>, now: i64) -> bool {
    item.get("expires_at")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .is_none_or(|at| at > now)
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl Registry {
    pub fn new(client: Client, connections: String, subscriptions: String) -> Self {
        Self {
            client,
            connections,
            subscriptions,
        }
    }

    /// Records a new connection of `user_id`.
    pub async fn connect(&self, connection_id: &str, user_id: Uuid) -> Result<(), RegistryError> {
        let now = now_secs();
        self.client
            .put_item()
            .table_name(&self.connections)
            .item("connection_id", s(connection_id))
            .item("user_id", s(user_id.to_string()))
            .item("connected_at", n(now))
            .item("expires_at", n(now + CONNECTION_TTL_SECS))
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }

    /// The user of a live connection.
    pub async fn user_of(&self, connection_id: &str) -> Result<Option<Uuid>, RegistryError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.connections)
            .key("connection_id", s(connection_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(err)?;
        let now = now_secs();
        Ok(item.item().and_then(|i| {
            let alive = alive(i, now);
            i.get("user_id")
                .and_then(|v| v.as_s().ok())
                .and_then(|v| v.parse().ok())
                .filter(|_| alive)
        }))
    }

    /// Forgets a connection and every subscription it had.
    pub async fn disconnect(&self, connection_id: &str) -> Result<(), RegistryError> {
        for topic in self.topics_of(connection_id).await? {
            self.unsubscribe(&topic, connection_id).await?;
        }
        self.client
            .delete_item()
            .table_name(&self.connections)
            .key("connection_id", s(connection_id))
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }

    /// The topics a connection is subscribed to (by the `by_connection` index).
    async fn topics_of(&self, connection_id: &str) -> Result<Vec<String>, RegistryError> {
        let query = self
            .client
            .query()
            .table_name(&self.subscriptions)
            .index_name("by_connection")
            .key_condition_expression("connection_id = :c")
            .expression_attribute_values(":c", s(connection_id));
        all_pages(query, "topic").await
    }

    pub async fn subscribe(
        &self,
        topic: &str,
        connection_id: &str,
        user_id: Uuid,
    ) -> Result<(), RegistryError> {
        self.client
            .put_item()
            .table_name(&self.subscriptions)
            .item("topic", s(topic))
            .item("connection_id", s(connection_id))
            .item("user_id", s(user_id.to_string()))
            .item("expires_at", n(now_secs() + CONNECTION_TTL_SECS))
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }

    pub async fn unsubscribe(&self, topic: &str, connection_id: &str) -> Result<(), RegistryError> {
        self.client
            .delete_item()
            .table_name(&self.subscriptions)
            .key("topic", s(topic))
            .key("connection_id", s(connection_id))
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }

    /// Whether `connection_id` is subscribed to `topic` (a live row).
    pub async fn is_subscribed(
        &self,
        topic: &str,
        connection_id: &str,
    ) -> Result<bool, RegistryError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.subscriptions)
            .key("topic", s(topic))
            .key("connection_id", s(connection_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(err)?;
        Ok(item.item().is_some_and(|i| alive(i, now_secs())))
    }

    /// The connections subscribed to `topic` (expired rows left out).
    pub async fn subscribers(&self, topic: &str) -> Result<Vec<String>, RegistryError> {
        let query = self
            .client
            .query()
            .table_name(&self.subscriptions)
            .key_condition_expression("topic = :t")
            .expression_attribute_values(":t", s(topic))
            .consistent_read(true);
        all_pages(query, "connection_id").await
    }
}
