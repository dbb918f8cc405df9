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

/// moto's server with one change: its SQS models read the clock with `time.time()` instead of
/// moto's `unix_time()` (a naive-datetime round trip of several microseconds). The values are
/// the same; the cost is not: moto recomputes a queue's attributes (scanning every message's
/// visibility and delay against the clock) several times per message sent and per receive, so
/// with 500 messages in a FIFO queue a `SendMessageBatch` took ~250 ms and enqueueing 500
/// messages 12.7 s (a forward tick of 500 sessions); with this clock, 0.7 s. Everything else is
/// moto as installed.
const LAUNCHER: &str = r#"
import sys, time
import moto.core.utils as utils
import moto.sqs.models as sqs
_unix_time, _unix_time_millis = utils.unix_time, utils.unix_time_millis
sqs.unix_time = lambda dt=None: time.time() if dt is None else _unix_time(dt)
sqs.unix_time_millis = lambda dt=None: time.time() * 1000.0 if dt is None else _unix_time_millis(dt)
from moto.server import main
main(sys.argv[1:])
"#;

/// The Python interpreter of `moto_server` (its shebang's), else `python3`.
fn python_of(moto_server: &std::path::Path) -> String {
    std::fs::read_to_string(moto_server)
        .ok()
        .and_then(|text| {
            let first = text.lines().next()?.strip_prefix("#!")?.trim().to_owned();
            first.contains("python").then_some(first)
        })
        .filter(|p| !p.contains(' '))
        .unwrap_or_else(|| "python3".into())
}

/// Waits until `port` answers or `child` exits (`false`).
fn listening(child: &mut Child, port: u16, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if !matches!(child.try_wait(), Ok(None)) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

impl Moto {
    /// Starts moto's server on `port` ([`LAUNCHER`]; plain `moto_server` when its interpreter
    /// cannot run it) and waits until it answers.
    pub fn start(port: u16) -> Result<Self> {
        let program = binary()?;
        let args = ["-H", "127.0.0.1", "-p", &port.to_string()];
        let mut launched = Command::new(python_of(&program))
            .arg("-c")
            .arg(LAUNCHER)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        let up = launched
            .as_mut()
            .is_some_and(|child| listening(child, port, Duration::from_secs(30)));
        let child = match up {
            true => launched,
            false => {
                if let Some(mut child) = launched {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                let child = Command::new(program)
                    .args(args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .context("starting moto_server")?;
                proc::wait_for_port(port, Duration::from_secs(30))
                    .context("moto_server did not start listening")?;
                Some(child)
            }
        };
        Ok(Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
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
                let resources = crate::aws::TemplateResources::from_template(&template_path())?;
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

/// The workspace's template.yaml.
pub fn template_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
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
