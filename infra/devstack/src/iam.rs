//! The local stack's stand-in for IAM: each function's AWS calls go through a proxy in front of
//! moto that allows exactly what the function's `Policies` in template.yaml allow, and answers
//! anything else as AWS does (`AccessDeniedException`). A behaviour that works locally but would
//! be denied in AWS fails locally too, and every call is recorded for the tests.
//!
//! Enforced: DynamoDB and SQS (JSON protocols: the action from `X-Amz-Target`, the table, index
//! or queue from the body). The policies read are SAM's policy templates the template uses
//! (`DynamoDBCrudPolicy`, `DynamoDBReadPolicy`, `DynamoDBWritePolicy`, `SQSSendMessagePolicy`,
//! `SQSPollerPolicy`, with the actions SAM's `policy_templates.json` grants) and inline
//! `Statement`s whose resources are `!GetAtt X.Arn` or `!Sub "${X.Arn}/index/*"`; any other
//! resource (the WebSocket API's `@connections`) is not enforced here.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_yaml_ng::Value;

/// What a statement allows its actions on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resource {
    /// A DynamoDB table (by logical id), itself.
    Table(String),
    /// The indexes of a DynamoDB table.
    Indexes(String),
    /// An SQS queue (by logical id).
    Queue(String),
    /// Something this proxy does not enforce.
    Other,
}

#[derive(Debug, Clone)]
struct Statement {
    /// `dynamodb:GetItem`, or a prefix pattern (`sqs:SendMessage*`).
    actions: Vec<String>,
    resources: Vec<Resource>,
}

impl Statement {
    fn allows(&self, action: &str, resource: &Resource) -> bool {
        self.actions
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => action.starts_with(prefix),
                None => pattern == action,
            })
            && self.resources.contains(resource)
    }
}

/// Every function's statements, by logical id.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    by_function: HashMap<String, Vec<Statement>>,
}

const DYNAMODB_CRUD: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:DeleteItem",
    "dynamodb:PutItem",
    "dynamodb:Scan",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:BatchGetItem",
    "dynamodb:DescribeTable",
    "dynamodb:ConditionCheckItem",
];
const DYNAMODB_READ: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:Scan",
    "dynamodb:Query",
    "dynamodb:BatchGetItem",
    "dynamodb:DescribeTable",
];
const DYNAMODB_WRITE: &[&str] = &[
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:BatchWriteItem",
];
const SQS_SEND: &[&str] = &["sqs:SendMessage*"];
const SQS_POLLER: &[&str] = &[
    "sqs:ChangeMessageVisibility",
    "sqs:ChangeMessageVisibilityBatch",
    "sqs:DeleteMessage",
    "sqs:DeleteMessageBatch",
    "sqs:GetQueueAttributes",
    "sqs:ReceiveMessage",
];

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// The logical id a `!Ref X` or `!GetAtt X.Attribute` names.
fn referenced(v: &Value) -> Option<String> {
    let Value::Tagged(tagged) = v else {
        return None;
    };
    let target = text(&tagged.value)?;
    Some(target.split('.').next().unwrap_or_default().to_owned())
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items.iter().filter_map(text).collect(),
        other => text(other).into_iter().collect(),
    }
}

/// A statement's resource: `!GetAtt X.Arn` (a table or a queue), `!Sub "${X.Arn}/index/*"`.
fn resource(v: &Value, kinds: &HashMap<String, String>) -> Resource {
    if let Value::Tagged(tagged) = v {
        let tag = tagged.tag.to_string();
        if tag.ends_with("GetAtt") {
            let id = referenced(v).unwrap_or_default();
            return match kinds.get(&id).map(String::as_str) {
                Some("AWS::DynamoDB::Table") => Resource::Table(id),
                Some("AWS::SQS::Queue") => Resource::Queue(id),
                _ => Resource::Other,
            };
        }
        if tag.ends_with("Sub")
            && let Some(sub) = text(&tagged.value)
            && let Some(rest) = sub.strip_prefix("${")
            && let Some((id, tail)) = rest.split_once(".Arn}")
            && tail == "/index/*"
        {
            return Resource::Indexes(id.to_owned());
        }
    }
    Resource::Other
}

impl Policies {
    /// Reads every function's `Policies` from the template at `path`.
    pub fn from_template(path: &Path) -> Result<Self> {
        let source =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let doc: Value = serde_yaml_ng::from_str(&source).context("parsing template.yaml")?;
        let resources = doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .context("template.yaml has no Resources")?;
        let kinds: HashMap<String, String> = resources
            .iter()
            .filter_map(|(id, r)| Some((text(id)?, text(r.get("Type")?)?)))
            .collect();
        let mut out = Self::default();
        for (id, r) in resources {
            let Some(id) = text(id) else { continue };
            if kinds.get(&id).map(String::as_str) != Some("AWS::Serverless::Function") {
                continue;
            }
            let mut statements = Vec::new();
            let policies = r
                .get("Properties")
                .and_then(|p| p.get("Policies"))
                .and_then(Value::as_sequence);
            for policy in policies.into_iter().flatten() {
                let Some(map) = policy.as_mapping() else {
                    bail!("{id}: a policy that is not a mapping");
                };
                for (name, body) in map {
                    let name = text(name).unwrap_or_default();
                    let table = || body.get("TableName").and_then(referenced);
                    let queue = || body.get("QueueName").and_then(referenced);
                    let templated = |actions: &[&str], resources: Vec<Resource>| Statement {
                        actions: actions.iter().map(|a| a.to_string()).collect(),
                        resources,
                    };
                    match name.as_str() {
                        "DynamoDBCrudPolicy" | "DynamoDBReadPolicy" | "DynamoDBWritePolicy" => {
                            let t = table().with_context(|| format!("{id}: {name} table"))?;
                            let actions = match name.as_str() {
                                "DynamoDBCrudPolicy" => DYNAMODB_CRUD,
                                "DynamoDBReadPolicy" => DYNAMODB_READ,
                                _ => DYNAMODB_WRITE,
                            };
                            statements.push(templated(
                                actions,
                                vec![Resource::Table(t.clone()), Resource::Indexes(t)],
                            ));
                        }
                        "SQSSendMessagePolicy" | "SQSPollerPolicy" => {
                            let q = queue().with_context(|| format!("{id}: {name} queue"))?;
                            let actions = if name == "SQSSendMessagePolicy" {
                                SQS_SEND
                            } else {
                                SQS_POLLER
                            };
                            statements.push(templated(actions, vec![Resource::Queue(q)]));
                        }
                        "Statement" => {
                            for s in body.as_sequence().into_iter().flatten() {
                                if s.get("Effect").and_then(text).as_deref() != Some("Allow") {
                                    bail!("{id}: only Allow statements are read");
                                }
                                let actions = s.get("Action").map(strings).unwrap_or_default();
                                let resources = match s.get("Resource") {
                                    Some(Value::Sequence(items)) => {
                                        items.iter().map(|v| resource(v, &kinds)).collect()
                                    }
                                    Some(v) => vec![resource(v, &kinds)],
                                    None => Vec::new(),
                                };
                                statements.push(Statement { actions, resources });
                            }
                        }
                        other => bail!("{id}: policy {other} is not read by the local stack"),
                    }
                }
            }
            out.by_function.insert(id, statements);
        }
        Ok(out)
    }

    /// Whether `function` may call `action` on `resource`.
    fn allows(&self, function: &str, action: &str, resource: &Resource) -> bool {
        self.by_function
            .get(function)
            .is_some_and(|s| s.iter().any(|s| s.allows(action, resource)))
    }
}

/// One call a function made, as the proxy judged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `dynamodb:DeleteItem`, `sqs:SendMessage`, ...
    pub action: String,
    /// The table, `<table>/index/<index>` or queue, by logical id.
    pub resource: String,
    pub allowed: bool,
}

#[derive(Clone)]
struct Shared {
    function: String,
    policies: Arc<Policies>,
    upstream: String,
    /// Actual queue names -> logical ids (tables are named by their logical ids locally).
    queues: Arc<HashMap<String, String>>,
    http: reqwest::Client,
    calls: Arc<Mutex<Vec<Call>>>,
}

/// A function's AWS endpoint: its calls judged by its policies, then forwarded to moto.
#[derive(Debug, Clone)]
pub struct IamProxy {
    /// The value for the function's `AWS_ENDPOINT_URL`.
    pub endpoint: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl IamProxy {
    /// Serves the endpoint of `function` (its logical id) in front of `upstream`; `queues` maps
    /// actual queue names to the template's logical ids.
    pub async fn start(
        function: &str,
        policies: Arc<Policies>,
        upstream: &str,
        queues: HashMap<String, String>,
    ) -> Result<Self> {
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let shared = Shared {
            function: function.to_owned(),
            policies,
            upstream: upstream.trim_end_matches('/').to_owned(),
            queues: Arc::new(queues),
            http: reqwest::Client::new(),
            calls: calls.clone(),
        };
        let app = axum::Router::new().fallback(forward).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the IAM proxy")?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { endpoint, calls })
    }

    /// Every call judged so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The calls that were denied.
    pub fn denied(&self) -> Vec<Call> {
        self.calls().into_iter().filter(|c| !c.allowed).collect()
    }
}

/// The functions whose AWS calls the local stack judges: the step chain's.
pub const FUNCTIONS: &[&str] = &[
    "ArenaFunction",
    "WsFunction",
    "BacktestStepFunction",
    "StepWatchdogFunction",
    "ForwardTickFunction",
];

/// The endpoint of each of [`FUNCTIONS`] in front of `upstream` (moto), judged by the policies of
/// the template at `template`; `steps` and `dead_letters` are the URLs of the steps queue and its
/// dead-letter queue (their names are mapped to the template's).
pub async fn endpoints(
    template: &Path,
    upstream: &str,
    steps: Option<&str>,
    dead_letters: Option<&str>,
) -> Result<HashMap<&'static str, IamProxy>> {
    let policies = Arc::new(Policies::from_template(template)?);
    let name = |url: &str| url.rsplit('/').next().unwrap_or_default().to_owned();
    let mut queues = HashMap::new();
    for (url, logical) in [
        (steps, "StepsQueue"),
        (dead_letters, "StepsDeadLetterQueue"),
    ] {
        if let Some(url) = url {
            queues.insert(name(url), logical.to_owned());
        }
    }
    let mut out = HashMap::new();
    for function in FUNCTIONS {
        let proxy = IamProxy::start(function, policies.clone(), upstream, queues.clone()).await?;
        out.insert(*function, proxy);
    }
    Ok(out)
}

/// The action and resource of a request, when it is one this proxy judges.
fn judged(
    headers: &HeaderMap,
    body: &[u8],
    queues: &HashMap<String, String>,
) -> Option<(String, Resource, String)> {
    let target = headers.get("x-amz-target")?.to_str().ok()?;
    let (service, operation) = target.split_once('.')?;
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if service.starts_with("DynamoDB_") {
        let table = json["TableName"].as_str()?.to_owned();
        let action = format!("dynamodb:{operation}");
        return Some(match json["IndexName"].as_str() {
            Some(index) => (
                action,
                Resource::Indexes(table.clone()),
                format!("{table}/index/{index}"),
            ),
            None => (action, Resource::Table(table.clone()), table),
        });
    }
    if service == "AmazonSQS" {
        let url = json["QueueUrl"].as_str()?;
        let name = url.rsplit('/').next().unwrap_or_default();
        let logical = queues.get(name).cloned().unwrap_or_else(|| name.to_owned());
        return Some((
            format!("sqs:{operation}"),
            Resource::Queue(logical.clone()),
            logical,
        ));
    }
    None
}

async fn forward(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some((action, resource, name)) = judged(&headers, &body, &shared.queues) {
        let allowed = shared.policies.allows(&shared.function, &action, &resource);
        shared
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Call {
                action: action.clone(),
                resource: name.clone(),
                allowed,
            });
        if !allowed {
            let message = format!(
                "User: arn:aws:sts::123456789012:assumed-role/{}/local is not authorized to perform: {action} on resource: {name} because no identity-based policy allows the {action} action",
                shared.function
            );
            let status = if action.starts_with("sqs:") {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::BAD_REQUEST
            };
            return (
                status,
                [("content-type", "application/x-amz-json-1.0")],
                serde_json::json!({
                    "__type": "com.amazon.coral.service#AccessDeniedException",
                    "message": message,
                })
                .to_string(),
            )
                .into_response();
        }
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = shared
        .http
        .request(method, format!("{}{path}", shared.upstream))
        .body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(upstream) => {
            let status = upstream.status();
            let headers = upstream.headers().clone();
            let bytes = upstream.bytes().await.unwrap_or_default();
            let mut response = (status, bytes).into_response();
            for (name, value) in &headers {
                if name != "content-length" && name != "transfer-encoding" {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            response
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
