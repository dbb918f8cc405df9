//! The local WebSocket API around the ws function, as `serve` and the benchmarks run it: the
//! gateway starts first (its `@connections` endpoint is the function's `WEBSOCKET_API_ENDPOINT`),
//! then the function is built and handed to it; until then connections are answered 503.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use alphalab_devstack::gateway::{Handler, WsGateway};
use anyhow::Result;

pub(crate) struct LocalWs {
    pub(crate) gateway: WsGateway,
    function: Arc<OnceLock<alphalab_ws::Ws>>,
}

impl LocalWs {
    pub(crate) async fn start(addr: SocketAddr) -> Result<Self> {
        let function: Arc<OnceLock<alphalab_ws::Ws>> = Arc::default();
        let cell = function.clone();
        let handler: Handler = Arc::new(move |event| {
            let cell = cell.clone();
            Box::pin(async move {
                match cell.get() {
                    Some(ws) => platform::lambda::ws::dispatch(ws, &event).await,
                    None => platform::lambda::ws::response(503, None),
                }
            })
        });
        Ok(Self {
            gateway: WsGateway::start(handler, addr).await?,
            function,
        })
    }

    /// From now on the gateway's events go to `ws`.
    pub(crate) fn serve(&self, ws: alphalab_ws::Ws) {
        let _ = self.function.set(ws);
    }
}
