//! `moto_server`: DynamoDB and SQS (and the API Gateway management API) on 127.0.0.1, spoken to
//! with the real AWS SDK clients.

use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::proc;

const INSTALL_HINT: &str = "install moto's server: `pip install 'moto[server]'`";

/// A `moto_server` child process.
#[derive(Debug)]
pub struct Moto {
    pub endpoint: String,
    child: Option<Child>,
}

/// The `moto_server` binary, or an error naming the package to install.
pub fn binary() -> Result<std::path::PathBuf> {
    proc::which("moto_server", INSTALL_HINT)
}

impl Moto {
    /// Starts `moto_server` on `port` and waits until it answers.
    pub fn start(port: u16) -> Result<Self> {
        let program = binary()?;
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting moto_server")?;
        proc::wait_for_port(port, Duration::from_secs(30))
            .context("moto_server did not start listening")?;
        Ok(Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            child: Some(child),
        })
    }

    /// Stops the server.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

static TEST_MOTO: OnceLock<Result<String, String>> = OnceLock::new();

/// The endpoint tests use: `TEST_AWS_ENDPOINT_URL` when given, else one `moto_server` started once
/// per test process and stopped when the process exits. Either way the tables and queues of
/// `template.yaml` are created on it once per process.
pub fn test_endpoint() -> Result<&'static str> {
    TEST_MOTO
        .get_or_init(|| {
            let start = || -> Result<String> {
                let endpoint = match std::env::var("TEST_AWS_ENDPOINT_URL") {
                    Ok(url) if !url.is_empty() => url,
                    _ => {
                        let mut moto = Moto::start(proc::free_port()?)?;
                        let child = moto.child.take().context("moto child")?;
                        proc::reap_on_exit(&format!("kill {} 2>/dev/null", child.id()))?;
                        std::mem::forget(child);
                        moto.endpoint.clone()
                    }
                };
                let template =
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
                let resources = crate::aws::TemplateResources::from_template(&template)?;
                let url = endpoint.clone();
                // a thread of its own: we may be called from inside a test's async runtime
                std::thread::spawn(move || {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?
                        .block_on(async { resources.create(&sdk_config(&url).await).await })
                })
                .join()
                .map_err(|_| anyhow::anyhow!("creating the template's resources panicked"))??;
                Ok(endpoint)
            };
            start().map_err(|e| format!("{e:#}"))
        })
        .as_deref()
        .map_err(|e| anyhow::anyhow!("moto unavailable: {e}"))
}

/// AWS SDK configuration for a local endpoint: fixed test credentials, region us-east-1.
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "alphalab-local",
        ))
        .load()
        .await
}
