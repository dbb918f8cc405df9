//! Creates, on a local AWS endpoint (moto), the DynamoDB tables and SQS queues that
//! `template.yaml` declares, so the local stack and the template cannot drift apart.
//!
//! Local names are the resources' logical ids (`ConnectionsTable`, `StepsQueue.fifo`, ...).

use std::path::Path;

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use serde_yaml_ng::Value;

/// A DynamoDB table as declared in the template.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSpec {
    pub name: String,
    /// (attribute, type S|N|B)
    pub attributes: Vec<(String, String)>,
    /// (attribute, HASH|RANGE)
    pub key: Vec<(String, String)>,
    /// (index name, key schema)
    pub indexes: Vec<(String, Vec<(String, String)>)>,
    pub ttl_attribute: Option<String>,
}

/// An SQS queue as declared in the template.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSpec {
    /// The template's logical id.
    pub id: String,
    /// The local name: the logical id, with `.fifo` for a FIFO queue.
    pub name: String,
    pub fifo: bool,
    pub visibility_timeout: Option<i64>,
    pub retention_period: Option<i64>,
    /// (the dead-letter queue's logical id, `maxReceiveCount`)
    pub redrive: Option<(String, i64)>,
}

/// An SQS event source of a function, as its template declares it (parameters at their
/// defaults): what the local event source mapping enforces.
#[derive(Debug, Clone, PartialEq)]
pub struct SqsMappingSpec {
    /// The function's logical id.
    pub function: String,
    /// The queue's logical id.
    pub queue: String,
    pub batch_size: usize,
    pub max_concurrency: usize,
    /// The function's timeout, seconds.
    pub timeout_secs: u64,
}

/// The tables, queues and SQS event sources of a SAM template.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TemplateResources {
    pub tables: Vec<TableSpec>,
    pub queues: Vec<QueueSpec>,
    pub mappings: Vec<SqsMappingSpec>,
    /// Every function's timeout (seconds), by logical id.
    pub timeouts: std::collections::HashMap<String, u64>,
    /// Every environment variable a function gets (Globals and its own), with its local value
    /// when the template alone gives one: a literal, a parameter's default, or a table's name
    /// (its logical id, as the local stack names tables); `None` for what only a running stack
    /// knows (a queue's URL, an endpoint) or a secret.
    pub variables: std::collections::BTreeMap<String, Option<String>>,
}

/// A scalar, or a `!Ref` to a parameter read at its default.
fn resolved(v: &Value, doc: &Value) -> Option<String> {
    if let Value::Tagged(tagged) = v
        && tagged.tag == "Ref"
    {
        let name = text(&tagged.value)?;
        return doc
            .get("Parameters")
            .and_then(|p| p.get(name.as_str()))
            .and_then(|p| p.get("Default"))
            .and_then(text);
    }
    text(v)
}

/// The logical id a `!GetAtt X.Arn` (or `!Ref X`) names.
fn referenced(v: &Value) -> Option<String> {
    let Value::Tagged(tagged) = v else {
        return None;
    };
    let target = text(&tagged.value)?;
    Some(target.split('.').next().unwrap_or_default().to_owned())
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn pairs(list: Option<&Value>, a: &str, b: &str) -> Vec<(String, String)> {
    list.and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|item| Some((text(item.get(a)?)?, text(item.get(b)?)?)))
        .collect()
}

impl TemplateResources {
    /// Reads the tables and queues of the template at `path`. CloudFormation's short-form tags
    /// (`!Ref`, `!Sub`, ...) are accepted and ignored where they appear.
    pub fn from_template(path: &Path) -> Result<Self> {
        let source =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&source)
    }

    /// The variables of an `Environment` (Globals' or a function's), resolved where the template
    /// alone can.
    fn add_variables(&mut self, environment: Option<&Value>, doc: &Value) {
        let variables = environment
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping);
        for (name, value) in variables.into_iter().flatten() {
            let Some(name) = text(name) else { continue };
            let local = match value {
                Value::Tagged(t) if t.tag == "Ref" => {
                    let target = text(&t.value).unwrap_or_default();
                    let resource = doc.get("Resources").and_then(|r| r.get(target.as_str()));
                    match resource
                        .and_then(|r| r.get("Type"))
                        .and_then(text)
                        .as_deref()
                    {
                        Some("AWS::DynamoDB::Table") => Some(target),
                        Some(_) => None,
                        // a parameter: its default, unless it is a secret (NoEcho)
                        None => {
                            let p = doc.get("Parameters").and_then(|p| p.get(target.as_str()));
                            let secret = p.and_then(|p| p.get("NoEcho")).and_then(text).as_deref()
                                == Some("true");
                            p.filter(|_| !secret)
                                .and_then(|p| p.get("Default"))
                                .and_then(text)
                        }
                    }
                }
                other => text(other),
            };
            let entry = self.variables.entry(name).or_insert(None);
            if entry.is_none() {
                *entry = local;
            }
        }
    }

    pub fn parse(source: &str) -> Result<Self> {
        let doc: Value = serde_yaml_ng::from_str(source).context("parsing template.yaml")?;
        let resources = doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .context("template.yaml has no Resources")?;
        let mut out = Self::default();
        out.add_variables(
            doc.get("Globals")
                .and_then(|g| g.get("Function"))
                .and_then(|f| f.get("Environment")),
            &doc,
        );
        for (id, resource) in resources {
            let id = text(id).context("resource id")?;
            let props = resource.get("Properties");
            let prop = |name: &str| props.and_then(|p| p.get(name));
            match resource.get("Type").and_then(text).as_deref() {
                Some("AWS::DynamoDB::Table") => {
                    let indexes = prop("GlobalSecondaryIndexes")
                        .and_then(Value::as_sequence)
                        .into_iter()
                        .flatten()
                        .filter_map(|gsi| {
                            let name = text(gsi.get("IndexName")?)?;
                            Some((
                                name,
                                pairs(gsi.get("KeySchema"), "AttributeName", "KeyType"),
                            ))
                        })
                        .collect();
                    let ttl = prop("TimeToLiveSpecification").and_then(|t| {
                        let enabled = t.get("Enabled").and_then(text).as_deref() == Some("true");
                        enabled
                            .then(|| t.get("AttributeName").and_then(text))
                            .flatten()
                    });
                    out.tables.push(TableSpec {
                        name: id,
                        attributes: pairs(
                            prop("AttributeDefinitions"),
                            "AttributeName",
                            "AttributeType",
                        ),
                        key: pairs(prop("KeySchema"), "AttributeName", "KeyType"),
                        indexes,
                        ttl_attribute: ttl,
                    });
                }
                Some("AWS::Serverless::Function") => {
                    let timeout = prop("Timeout")
                        .and_then(|t| resolved(t, &doc))
                        .or_else(|| {
                            doc.get("Globals")
                                .and_then(|g| g.get("Function"))
                                .and_then(|f| f.get("Timeout"))
                                .and_then(text)
                        })
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(3);
                    out.timeouts.insert(id.clone(), timeout);
                    out.add_variables(prop("Environment"), &doc);
                    let events = prop("Events").and_then(Value::as_mapping);
                    for (_, event) in events.into_iter().flatten() {
                        if event.get("Type").and_then(text).as_deref() != Some("SQS") {
                            continue;
                        }
                        let p = event.get("Properties");
                        let field = |name: &str| p.and_then(|p| p.get(name));
                        out.mappings.push(SqsMappingSpec {
                            function: id.clone(),
                            queue: field("Queue").and_then(referenced).unwrap_or_default(),
                            batch_size: field("BatchSize")
                                .and_then(|b| resolved(b, &doc))
                                .and_then(|b| b.parse().ok())
                                .unwrap_or(10),
                            max_concurrency: field("ScalingConfig")
                                .and_then(|c| c.get("MaximumConcurrency"))
                                .and_then(|c| resolved(c, &doc))
                                .and_then(|c| c.parse().ok())
                                .unwrap_or(1_000),
                            timeout_secs: timeout,
                        });
                    }
                }
                Some("AWS::SQS::Queue") => {
                    let fifo = prop("FifoQueue").and_then(text).as_deref() == Some("true");
                    let number = |v: Option<&Value>| v.and_then(text).and_then(|v| v.parse().ok());
                    let redrive = prop("RedrivePolicy").and_then(|r| {
                        Some((
                            referenced(r.get("deadLetterTargetArn")?)?,
                            number(r.get("maxReceiveCount"))?,
                        ))
                    });
                    out.queues.push(QueueSpec {
                        name: if fifo {
                            format!("{id}.fifo")
                        } else {
                            id.clone()
                        },
                        id,
                        fifo,
                        visibility_timeout: number(prop("VisibilityTimeout")),
                        retention_period: number(prop("MessageRetentionPeriod")),
                        redrive,
                    });
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The queue of logical id `id`.
    pub fn queue(&self, id: &str) -> Option<&QueueSpec> {
        self.queues.iter().find(|q| q.id == id)
    }

    /// Creates every table and queue on the endpoint of `config`; existing ones are kept.
    pub async fn create(&self, config: &aws_config::SdkConfig) -> Result<()> {
        let dynamo = aws_sdk_dynamodb::Client::new(config);
        let existing = dynamo
            .list_tables()
            .send()
            .await?
            .table_names
            .unwrap_or_default();
        for table in &self.tables {
            if existing.contains(&table.name) {
                continue;
            }
            let key_schema = |key: &[(String, String)]| -> Result<Vec<KeySchemaElement>> {
                key.iter()
                    .map(|(name, kind)| {
                        Ok(KeySchemaElement::builder()
                            .attribute_name(name)
                            .key_type(KeyType::from(kind.as_str()))
                            .build()?)
                    })
                    .collect()
            };
            let mut request = dynamo
                .create_table()
                .table_name(&table.name)
                .billing_mode(BillingMode::PayPerRequest)
                .set_key_schema(Some(key_schema(&table.key)?));
            for (name, kind) in &table.attributes {
                request = request.attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(name)
                        .attribute_type(ScalarAttributeType::from(kind.as_str()))
                        .build()?,
                );
            }
            for (name, key) in &table.indexes {
                request = request.global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(name)
                        .set_key_schema(Some(key_schema(key)?))
                        .projection(
                            Projection::builder()
                                .projection_type(ProjectionType::All)
                                .build(),
                        )
                        .build()?,
                );
            }
            request
                .send()
                .await
                .with_context(|| format!("creating table {}", table.name))?;
            if let Some(attribute) = &table.ttl_attribute {
                dynamo
                    .update_time_to_live()
                    .table_name(&table.name)
                    .time_to_live_specification(
                        TimeToLiveSpecification::builder()
                            .enabled(true)
                            .attribute_name(attribute)
                            .build()?,
                    )
                    .send()
                    .await
                    .with_context(|| format!("enabling TTL on {}", table.name))?;
            }
        }
        let sqs = aws_sdk_sqs::Client::new(config);
        // dead-letter queues first: a redrive policy names its target's ARN
        let mut queues: Vec<&QueueSpec> = self.queues.iter().collect();
        queues.sort_by_key(|q| q.redrive.is_some());
        for queue in queues {
            use aws_sdk_sqs::types::QueueAttributeName as A;
            let mut request = sqs.create_queue().queue_name(&queue.name);
            if queue.fifo {
                request = request.attributes(A::FifoQueue, "true");
            }
            if let Some(v) = queue.visibility_timeout {
                request = request.attributes(A::VisibilityTimeout, v.to_string());
            }
            if let Some(v) = queue.retention_period {
                request = request.attributes(A::MessageRetentionPeriod, v.to_string());
            }
            if let Some((target, max_receive)) = &queue.redrive {
                let target = self
                    .queue(target)
                    .with_context(|| format!("{}'s dead-letter queue {target}", queue.id))?;
                let url = sqs
                    .get_queue_url()
                    .queue_name(&target.name)
                    .send()
                    .await?
                    .queue_url
                    .context("dead-letter queue url")?;
                let arn = sqs
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(A::QueueArn)
                    .send()
                    .await?
                    .attributes
                    .and_then(|a| a.get(&A::QueueArn).cloned())
                    .context("dead-letter queue arn")?;
                request = request.attributes(
                    A::RedrivePolicy,
                    serde_json::json!({ "deadLetterTargetArn": arn, "maxReceiveCount": max_receive })
                        .to_string(),
                );
            }
            request
                .send()
                .await
                .with_context(|| format!("creating queue {}", queue.name))?;
        }
        Ok(())
    }
}
