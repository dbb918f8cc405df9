//! Postgres from the distribution's server binaries.
//!
//! The server refuses to run as root, so when we are root the cluster belongs to, and runs as, an
//! unprivileged user (`postgres`, which the distribution's package creates).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sqlx::{Connection, Executor, PgConnection};

use crate::proc::{self, command_as, run};

/// The migrations of `migrations/` (the only source of the schema).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

const INSTALL_HINT: &str = "install the PostgreSQL server (Debian: `apt-get install postgresql`) \
    or point PG_BIN at a directory holding initdb and pg_ctl";

/// The directory holding `initdb` and `pg_ctl`: `$PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
pub fn bin_dir() -> Result<PathBuf> {
    find_bin_dir(
        std::env::var_os("PG_BIN").map(PathBuf::from),
        Path::new("/usr/lib/postgresql"),
    )
}

/// [`bin_dir`] with its inputs given: `pg_bin` as `$PG_BIN`, `root` for `/usr/lib/postgresql`.
pub fn find_bin_dir(pg_bin: Option<PathBuf>, root: &Path) -> Result<PathBuf> {
    if let Some(dir) = pg_bin {
        if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
            return Ok(dir);
        }
        bail!(
            "PG_BIN={} holds no initdb and pg_ctl: {INSTALL_HINT}",
            dir.display()
        );
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    candidates.sort();
    candidates
        .pop()
        .map(|(_, bin)| bin)
        .with_context(|| format!("PostgreSQL server binaries not found: {INSTALL_HINT}"))
}

/// A running cluster.
#[derive(Debug)]
pub struct PgCluster {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    user: Option<String>,
}

impl PgCluster {
    /// Starts (creating it if needed) the cluster kept in `dir` on `port`. An already running
    /// cluster in `dir` is reused.
    pub fn start(dir: &Path, port: u16) -> Result<Self> {
        let bin = bin_dir()?;
        let user = if proc::is_root() {
            let user = std::env::var("PG_USER").unwrap_or_else(|_| "postgres".into());
            run(
                std::process::Command::new("id").arg("-u").arg(&user),
                "looking up the unprivileged user",
            )
            .with_context(|| {
                format!(
                    "running as root, Postgres needs an unprivileged user `{user}`: \
                     `apt-get install postgresql` creates it (or set PG_USER)"
                )
            })?;
            Some(user)
        } else {
            None
        };
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let cluster = Self {
            port,
            dir,
            bin,
            user,
        };
        if let Some(user) = &cluster.user {
            run(
                std::process::Command::new("chown")
                    .arg("-R")
                    .arg(user)
                    .arg(&cluster.dir),
                "handing the data directory to the Postgres user",
            )?;
        }
        let data = cluster.data_dir();
        if !data.join("PG_VERSION").is_file() {
            run(
                cluster
                    .command("initdb")
                    .arg("-D")
                    .arg(&data)
                    .args(["-A", "trust", "-U", "postgres", "-E", "UTF8"])
                    .args(["--locale=C", "--no-sync"]),
                "initdb",
            )?;
        }
        cluster.start_server()?;
        Ok(cluster)
    }

    /// Starts the server of this cluster unless it runs (after [`PgCluster::stop`]: a database
    /// that comes back).
    pub fn start_server(&self) -> Result<()> {
        if !self.is_running() {
            let options = format!(
                "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
                port = self.port,
                dir = self.dir.display()
            );
            run(
                self.command("pg_ctl")
                    .arg("-D")
                    .arg(self.data_dir())
                    .args(["-o", &options, "-l"])
                    .arg(self.dir.join("postgres.log"))
                    .args(["-w", "-t", "30", "start"]),
                "starting Postgres",
            )?;
        }
        proc::wait_for_port(self.port, Duration::from_secs(10))
    }

    /// A throwaway cluster in a new temporary directory, stopped and removed when this process
    /// exits.
    pub fn start_throwaway() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "alphalab-pg-{}-{}",
            std::process::id(),
            proc::free_port()?
        ));
        let cluster = Self::start(&dir, proc::free_port()?)?;
        let stop = cluster.stop_command_line();
        proc::reap_on_exit(&format!("{stop}; rm -rf '{}'", cluster.dir.display()))?;
        Ok(cluster)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> std::process::Command {
        command_as(self.user.as_deref(), &self.bin.join(program))
    }

    fn is_running(&self) -> bool {
        self.command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("status")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn stop_command_line(&self) -> String {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.data_dir();
        match &self.user {
            Some(u) => format!(
                "runuser -u {u} -- '{}' -D '{}' -m immediate stop",
                pg_ctl.display(),
                data.display()
            ),
            None => format!(
                "'{}' -D '{}' -m immediate stop",
                pg_ctl.display(),
                data.display()
            ),
        }
    }

    /// Stops the server (fast shutdown).
    pub fn stop(&self) -> Result<()> {
        run(
            self.command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "fast", "-w", "stop"]),
            "stopping Postgres",
        )
        .map(drop)
    }

    /// URL of `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

/// Creates `database` on the server of `admin_url` unless it exists.
pub async fn ensure_database(admin_url: &str, database: &str) -> Result<()> {
    let mut conn = PgConnection::connect(admin_url).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(database)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        conn.execute(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{}\"",
            database.replace('"', "")
        )))
        .await?;
    }
    Ok(())
}

/// Applies the migrations to the database at `url`.
pub async fn migrate(url: &str) -> Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    MIGRATOR
        .run(&mut conn)
        .await
        .context("applying migrations")?;
    Ok(())
}

/// The server tests use: `TEST_DATABASE_URL`'s server when given (its URL names a database we
/// may connect to for administration), else a throwaway cluster started once per test process.
/// The template database holds the migrated schema; each test database is a clone of it.
struct TestCluster {
    /// A server of `TEST_DATABASE_URL`, which outlives us: test databases are dropped after use.
    external: bool,
    admin_url: String,
    url: DatabaseUrl,
    template: String,
}

static TEST_SERVER: OnceLock<Result<TestCluster, String>> = OnceLock::new();

fn test_cluster() -> Result<&'static TestCluster> {
    TEST_SERVER
        .get_or_init(|| {
            // A thread of its own: we may be called from inside a test's async runtime.
            std::thread::spawn(|| setup_test_cluster().map_err(|e| format!("{e:#}")))
                .join()
                .unwrap_or_else(|_| Err("test database setup panicked".into()))
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("test Postgres unavailable: {e}"))
}

fn setup_test_cluster() -> Result<TestCluster> {
    let (external, admin_url) = match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => (true, url),
        _ => {
            let cluster = PgCluster::start_throwaway()?;
            let url = cluster.url("postgres");
            // the reaper stops it when the process exits
            std::mem::forget(cluster);
            (false, url)
        }
    };
    let url = DatabaseUrl::parse(&admin_url)?;
    let template = format!("alphalab_template_{}", std::process::id());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut conn = PgConnection::connect(&admin_url).await?;
        conn.execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {template}"
        )))
        .await?;
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {template}")))
            .await?;
        migrate(&url.with_database(&template)).await?;
        anyhow::Ok(())
    })?;
    if external {
        // the server outlives us: drop the template when this process exits
        drop_on_exit(&admin_url, &template)?;
    }
    Ok(TestCluster {
        external,
        admin_url,
        url,
        template,
    })
}

/// A Postgres URL split around its database name, so that other databases on the same server
/// keep the host, credentials and query parameters (`?sslmode=require`, ...).
#[derive(Debug, Clone)]
pub struct DatabaseUrl {
    /// Everything before the database name (`postgres://user@host:port`).
    base: String,
    /// `?...` or empty.
    query: String,
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self> {
        let (without_query, query) = match url.split_once('?') {
            Some((u, q)) => (u, format!("?{q}")),
            None => (url, String::new()),
        };
        let (base, database) = without_query
            .rsplit_once('/')
            .filter(|(base, db)| base.contains("://") && !base.ends_with('/') && !db.is_empty())
            .context("a database URL must end with /<database> (before any ?parameters)")?;
        let _ = database;
        Ok(Self {
            base: base.to_owned(),
            query,
        })
    }

    /// The URL of `database` on the same server, with the same parameters.
    pub fn with_database(&self, database: &str) -> String {
        format!("{}/{database}{}", self.base, self.query)
    }
}

/// Drops `database` on the server of `admin_url` when this process exits, with `psql` (the
/// client that comes with any Postgres install); without `psql` it says so and leaves it.
fn drop_on_exit(admin_url: &str, database: &str) -> Result<()> {
    let Ok(psql) = proc::which("psql", "") else {
        eprintln!(
            "note: psql not found: the template database {database} stays on TEST_DATABASE_URL's server"
        );
        return Ok(());
    };
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    proc::reap_on_exit(&format!(
        "{} {} -c {} >/dev/null 2>&1",
        quote(&psql.display().to_string()),
        quote(admin_url),
        quote(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
    ))
}

/// A fresh, migrated database for one test.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl Drop for TestDatabase {
    /// On a throwaway cluster the database goes with the cluster; on the server of
    /// `TEST_DATABASE_URL` it is dropped now (connections still open are terminated).
    fn drop(&mut self) {
        let Ok(cluster) = test_cluster() else { return };
        if !cluster.external {
            return;
        }
        let (admin_url, name) = (cluster.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin_url).await.ok()?;
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await
                .ok()
            })
        })
        .join();
    }
}

impl TestDatabase {
    /// Clones the migrated template (about 0.1 s).
    pub async fn create() -> Result<Self> {
        let server = test_cluster()?;
        let name = format!("test_{}", uuid_like());
        let mut conn = PgConnection::connect(&server.admin_url).await?;
        conn.execute(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} TEMPLATE {}",
            server.template
        )))
        .await
        .context("cloning the template database")?;
        Ok(Self {
            url: server.url.with_database(&name),
            name,
        })
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}_{n}_{nanos}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::DatabaseUrl;

    #[test]
    fn other_databases_keep_the_servers_parameters() {
        let url =
            DatabaseUrl::parse("postgres://u:p@db:5432/postgres?sslmode=require&x=1").unwrap();
        assert_eq!(
            url.with_database("test_1"),
            "postgres://u:p@db:5432/test_1?sslmode=require&x=1"
        );
        let url = DatabaseUrl::parse("postgres://db/admin").unwrap();
        assert_eq!(url.with_database("t"), "postgres://db/t");
        assert!(DatabaseUrl::parse("postgres://db").is_err());
    }
}
