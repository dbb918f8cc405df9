//! WebSocket APIs (API Gateway): one Lambda receives `$connect`, `$disconnect` and every message
//! (`$default`, or a custom route key); [`dispatch`] sends each to the matching method of a
//! [`WebSocketHandler`]. The status code answers API Gateway: on `$connect` anything but 2xx
//! refuses the connection; on messages it only reaches the logs (replies to the client are pushed
//! with PostToConnection).

use std::future::Future;

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use lambda_runtime::{LambdaEvent, service_fn};
use tracing::Instrument;

/// What a WebSocket function does with each kind of event.
pub trait WebSocketHandler: Send + Sync {
    /// `$connect`: authenticate (the token is in the query string) and register the connection.
    fn connect(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
    ) -> impl Future<Output = ApiGatewayProxyResponse> + Send;
    /// `$disconnect`: forget the connection (best effort: API Gateway may never send it).
    fn disconnect(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
    ) -> impl Future<Output = ApiGatewayProxyResponse> + Send;
    /// Any message (`$default` or a custom route key).
    fn message(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
    ) -> impl Future<Output = ApiGatewayProxyResponse> + Send;
}

/// The route key of `request` (`$connect`, `$disconnect`, `$default`, ...).
pub fn route_key(request: &ApiGatewayWebsocketProxyRequest) -> &str {
    request
        .request_context
        .route_key
        .as_deref()
        .unwrap_or("$default")
}

/// Sends `request` to the handler method its route key names.
pub async fn dispatch<H: WebSocketHandler>(
    handler: &H,
    request: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let connection = request
        .request_context
        .connection_id
        .as_deref()
        .unwrap_or("-");
    let route = route_key(request);
    let span = tracing::info_span!("websocket", route = %route, connection_id = %connection);
    async {
        match route {
            "$connect" => handler.connect(request).await,
            "$disconnect" => handler.disconnect(request).await,
            _ => handler.message(request).await,
        }
    }
    .instrument(span)
    .await
}

/// A response with `status` and an optional text body.
pub fn response(status: u16, body: Option<String>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status);
    response.body = body.map(Body::Text);
    response
}

/// Runs a WebSocket handler under the Lambda runtime.
pub async fn serve<H: WebSocketHandler + 'static>(handler: H) -> Result<(), super::Error> {
    let handler = std::sync::Arc::new(handler);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
            let handler = handler.clone();
            async move { Ok::<_, super::Error>(dispatch(&*handler, &event.payload).await) }
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts connections that carry `?token=ok` and echoes messages' bodies.
    struct Echo;

    impl WebSocketHandler for Echo {
        async fn connect(&self, r: &ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
            let ok = r.query_string_parameters.first("token") == Some("ok");
            response(if ok { 200 } else { 401 }, None)
        }
        async fn disconnect(&self, _: &ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
            response(200, Some("bye".into()))
        }
        async fn message(&self, r: &ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
            response(200, r.body.clone())
        }
    }

    /// An event as API Gateway sends it (`connectedAt` and `requestTimeEpoch` included).
    fn event(route: &str, query: &str, body: Option<&str>) -> ApiGatewayWebsocketProxyRequest {
        let mut value = serde_json::json!({
            "requestContext": {
                "routeKey": route, "eventType": "MESSAGE", "connectionId": "L0SM9cOFvHcCIhw=",
                "connectedAt": 1_764_590_000_000i64, "requestTimeEpoch": 1_764_590_000_123i64,
                "stage": "prod", "domainName": "abc.execute-api.us-east-1.amazonaws.com",
                "apiId": "abc", "requestId": "r-1", "messageDirection": "IN"
            },
            "isBase64Encoded": false
        });
        if !query.is_empty() {
            value["queryStringParameters"] = serde_json::json!({ "token": query });
        }
        if let Some(body) = body {
            value["body"] = body.into();
        }
        serde_json::from_value(value).unwrap()
    }

    #[tokio::test]
    async fn each_route_key_reaches_its_method() {
        assert_eq!(
            dispatch(&Echo, &event("$connect", "ok", None))
                .await
                .status_code,
            200
        );
        assert_eq!(
            dispatch(&Echo, &event("$connect", "bad", None))
                .await
                .status_code,
            401
        );
        assert_eq!(
            dispatch(&Echo, &event("$connect", "", None))
                .await
                .status_code,
            401
        );
        let bye = dispatch(&Echo, &event("$disconnect", "", None)).await;
        assert_eq!(bye.body, Some(Body::Text("bye".into())));
        for route in ["$default", "subscribe"] {
            let echoed = dispatch(&Echo, &event(route, "", Some(r#"{"action":"ping"}"#))).await;
            assert_eq!(echoed.body, Some(Body::Text(r#"{"action":"ping"}"#.into())));
        }
    }
}
