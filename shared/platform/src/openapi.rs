//! What every operation answers because of this layer, written into the OpenAPI document so a
//! client (and a fuzzer) can trust every status it sees: the extractors' 400/404/413/422, the
//! authentication's 401, the rate limit's 429, the router's 405 and the database's 503, each with
//! the error body. Handlers document their own answers (200, 201, 409, their 422s); this adds
//! the rest, in one place, from what the operation declares (a body, a query, a path, a token).

use serde_json::{Map, Value, json};

/// A status this layer answers, and why.
struct Answer {
    status: &'static str,
    description: &'static str,
    retry_after: bool,
}

const fn answer(status: &'static str, description: &'static str) -> Answer {
    Answer {
        status,
        description,
        retry_after: false,
    }
}

/// Adds this layer's statuses (each with the error body) to every operation, makes every
/// `operationId` `<tag>_<handler>` (unique across the functions), and gives operations without
/// a token an explicit empty `security`.
pub fn complete(doc: &mut Value) {
    refuse_nul_in_bodies(doc);
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (_, operation) in item.iter_mut() {
            let Some(operation) = operation.as_object_mut() else {
                continue;
            };
            complete_operation(path, operation);
        }
    }
}

/// Every text of a request body refuses U+0000 (the JSON extractor answers 422: Postgres text
/// cannot hold it), so the schema says so: `not: {type: string, pattern: "\\u0000"}` on each
/// string property
/// (and on the items of a list of strings) of the bodies' schemas.
fn refuse_nul_in_bodies(doc: &mut Value) {
    let bodies: Vec<String> = doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(Value::as_object)
        .flat_map(|item| item.values())
        .filter_map(|op| {
            op.pointer("/requestBody/content/application~1json/schema/$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                .map(str::to_owned)
        })
        .collect();
    let is_string = |schema: &Value| match &schema["type"] {
        Value::String(t) => t == "string",
        Value::Array(ts) => ts.iter().any(|t| t == "string"),
        _ => false,
    };
    for name in bodies {
        let Some(properties) = doc
            .pointer_mut(&format!("/components/schemas/{name}/properties"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        for property in properties.values_mut() {
            let target = if is_string(property) {
                Some(property)
            } else if is_string(&property["items"]) {
                property.get_mut("items")
            } else {
                None
            };
            if let Some(text) = target.and_then(Value::as_object_mut) {
                // `type` inside: a null (where allowed) is not a string holding U+0000
                text.insert(
                    "not".into(),
                    json!({"type": "string", "pattern": "\\u0000"}),
                );
            }
        }
    }
}

fn complete_operation(path: &str, operation: &mut Map<String, Value>) {
    let secured = operation
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter()
                .any(|r| r.as_object().is_some_and(|o| !o.is_empty()))
        });
    if !secured {
        operation.insert("security".into(), json!([]));
    }
    let located = |place: &str| {
        operation
            .get("parameters")
            .and_then(Value::as_array)
            .is_some_and(|ps| ps.iter().any(|p| p["in"] == place))
    };
    let (has_path, has_query) = (path.contains('{'), located("query"));
    let has_body = operation.contains_key("requestBody");
    let handler = operation
        .get("operationId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let tag = operation
        .get("tags")
        .and_then(|t| t.get(0))
        .and_then(Value::as_str)
        .unwrap_or("api")
        .replace('-', "_");
    if !handler.starts_with(&tag) {
        operation.insert("operationId".into(), json!(format!("{tag}_{handler}")));
    }

    let mut answers = Vec::new();
    if has_body {
        answers.push(answer(
            "400",
            "The body is not JSON, or not sent as application/json.",
        ));
        answers.push(answer(
            "413",
            "The body is larger than the API accepts (details.limit_bytes).",
        ));
        answers.push(answer(
            "422",
            "The body is not the object this operation takes: the error names the field.",
        ));
    }
    if has_query {
        answers.push(answer(
            "400",
            "A query parameter cannot be read (a wrong type, an unknown cursor, a limit out of range).",
        ));
    }
    if has_path {
        answers.push(answer(
            "404",
            "No such resource among the caller's (another user's id answers the same).",
        ));
    }
    if secured {
        answers.push(answer(
            "401",
            "The bearer token is missing, expired or not from this API's Clerk instance.",
        ));
        answers.push(Answer {
            status: "429",
            description: "The caller's requests per minute are used up: retry after Retry-After seconds.",
            retry_after: true,
        });
    }
    answers.push(answer(
        "405",
        "The path exists with other methods only (the Allow header lists them).",
    ));
    if handler != "openapi_document" {
        answers.push(Answer {
            status: "503",
            description: "The database is unavailable for a moment: retry after Retry-After seconds.",
            retry_after: true,
        });
    }

    let Some(responses) = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    else {
        return;
    };
    for a in answers {
        let entry = responses.entry(a.status).or_insert_with(|| {
            json!({
                "description": a.description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
            })
        });
        if a.retry_after {
            entry["headers"]["Retry-After"] = json!({
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 0}
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secured_operation_with_a_body_and_a_path_gets_every_layer_answer() {
        let mut doc = json!({"paths": {"/api/things/{id}": {"put": {
            "operationId": "update", "tags": ["things"],
            "security": [{"bearer": []}],
            "parameters": [{"name": "id", "in": "path"}],
            "requestBody": {},
            "responses": {"200": {"description": "ok"}, "422": {"description": "own"}}
        }}}});
        complete(&mut doc);
        let op = &doc["paths"]["/api/things/{id}"]["put"];
        assert_eq!(op["operationId"], "things_update");
        let statuses: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
        assert_eq!(
            statuses,
            [
                "200", "400", "401", "404", "405", "413", "422", "429", "503"
            ]
        );
        // the handler's own description stays
        assert_eq!(op["responses"]["422"]["description"], "own");
        assert!(op["responses"]["429"]["headers"]["Retry-After"].is_object());
        assert_eq!(op["security"], json!([{"bearer": []}]));
    }

    #[test]
    fn the_texts_of_request_bodies_refuse_the_nul_character() {
        let mut doc = json!({
            "paths": {"/api/things": {"post": {
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewThing"}}}},
                "responses": {}
            }}},
            "components": {"schemas": {"NewThing": {"properties": {
                "name": {"type": "string", "pattern": "\\S"},
                "tags": {"type": ["array", "null"], "items": {"type": "string"}},
                "size": {"type": "integer"}
            }}}}
        });
        complete(&mut doc);
        let props = &doc["components"]["schemas"]["NewThing"]["properties"];
        assert_eq!(props["name"]["not"]["pattern"], "\\u0000");
        assert_eq!(props["name"]["pattern"], "\\S");
        assert_eq!(props["tags"]["items"]["not"]["pattern"], "\\u0000");
        assert!(props["size"].get("not").is_none());
    }

    #[test]
    fn a_public_operation_declares_an_empty_security_and_no_401() {
        let mut doc = json!({"paths": {"/api/health": {"get": {
            "operationId": "health", "tags": ["health"], "responses": {"200": {}}
        }}}});
        complete(&mut doc);
        let op = &doc["paths"]["/api/health"]["get"];
        assert_eq!(op["security"], json!([]));
        assert_eq!(op["operationId"], "health");
        assert!(op["responses"].get("401").is_none());
        assert!(op["responses"].get("503").is_some());
    }
}
