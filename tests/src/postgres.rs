//! Throwaway PostgreSQL for tests and benchmarks.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use sqlx::{Connection, Executor, PgConnection};

/// A running PostgreSQL server that tests may create databases in.
#[derive(Debug, Clone)]
pub struct PostgresCluster {
    /// URL of the server's `postgres` database, as a superuser.
    admin_url: String,
    /// How to stop and start the server again: for a cluster this process started.
    control: Option<Control>,
}

/// What `pg_ctl` needs to stop a throwaway cluster and start it again on the same port.
#[derive(Debug, Clone)]
struct Control {
    as_root: bool,
    pg_ctl: PathBuf,
    data: PathBuf,
    log: PathBuf,
    options: String,
}

impl Control {
    fn start(&self) -> Result<()> {
        run(postgres_command(self.as_root, &self.pg_ctl)
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-o", &self.options, "start"]))
        .context("pg_ctl start")
    }
}

impl PostgresCluster {
    /// The cluster of `DATABASE_URL` when it is set, else one throwaway cluster per process.
    pub fn shared() -> Result<Self> {
        static SHARED: OnceLock<Result<PostgresCluster, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| match std::env::var("DATABASE_URL") {
                Ok(url) => Ok(PostgresCluster::from_url(&url)),
                Err(_) => Self::start_throwaway(&ClusterSettings::for_tests())
                    .map_err(|e| format!("{e:#}")),
            })
            .clone()
            .map_err(anyhow::Error::msg)
    }

    /// Starts a new cluster on a free port, removed when this process ends (a watchdog process
    /// stops it and deletes its directory, even if the process is killed).
    pub fn start_throwaway(settings: &ClusterSettings) -> Result<Self> {
        let bin = postgres_bin_dir()?;
        let as_root = is_root();
        let dir = std::env::temp_dir().join(format!(
            "userledger-pg-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir)?;
        if as_root {
            run(Command::new("chown").arg("postgres:postgres").arg(&dir))?;
        }
        let data = dir.join("data");
        run(postgres_command(as_root, &bin.join("initdb"))
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-sync",
            ])
            .arg("-D")
            .arg(&data))
        .context("initdb")?;
        watch_and_remove(as_root, &bin, &dir)?;

        let port = free_port()?;
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections={}",
            dir.display(),
            settings.max_connections
        );
        for (key, value) in &settings.options {
            options.push_str(&format!(" -c {key}={value}"));
        }
        let control = Control {
            as_root,
            pg_ctl: bin.join("pg_ctl"),
            data,
            log: dir.join("postgres.log"),
            options,
        };
        control.start()?;
        Ok(PostgresCluster {
            admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            control: Some(control),
        })
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`): connections
    /// are cut, and the next start recovers from the WAL. Only for a cluster this process
    /// started.
    pub fn stop_immediately(&self) -> Result<()> {
        let control = self.control()?;
        run(postgres_command(control.as_root, &control.pg_ctl)
            .arg("-D")
            .arg(&control.data)
            .args(["-m", "immediate", "-w", "stop"]))
        .context("pg_ctl stop")
    }

    /// Starts a stopped server again, on the same port.
    pub fn start_again(&self) -> Result<()> {
        self.control()?.start()
    }

    fn control(&self) -> Result<&Control> {
        self.control
            .as_ref()
            .context("only a cluster this process started can be stopped and started")
    }

    /// A server that is already running, named by the URL of one of its databases.
    pub fn from_url(admin_url: &str) -> Self {
        Self {
            admin_url: admin_url.to_owned(),
            control: None,
        }
    }

    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// Creates an empty database with a unique name.
    pub async fn create_database(&self) -> Result<TestDatabase> {
        let name = format!("test_{}", uuid::Uuid::now_v7().simple());
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .with_context(|| format!("connecting to {}", self.admin_url))?;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        admin.close().await?;
        let url = database_url(&self.admin_url, &name)?;
        Ok(TestDatabase {
            admin_url: self.admin_url.clone(),
            name,
            url,
        })
    }
}

/// How a throwaway cluster is configured.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub max_connections: u32,
    /// Extra `-c key=value` server settings.
    pub options: Vec<(String, String)>,
}

impl ClusterSettings {
    /// Durability off: tests measure behaviour, not disks.
    pub fn for_tests() -> Self {
        Self {
            max_connections: 400,
            options: vec![
                ("fsync".into(), "off".into()),
                ("synchronous_commit".into(), "off".into()),
                ("full_page_writes".into(), "off".into()),
            ],
        }
    }

    /// PostgreSQL's durable defaults, for benchmarks.
    pub fn durable() -> Self {
        Self {
            max_connections: 400,
            options: vec![("shared_buffers".into(), "512MB".into())],
        }
    }
}

/// A database of its own for one test, dropped when the value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// A new database in the shared cluster (see [`PostgresCluster::shared`]).
    pub async fn new() -> Result<Self> {
        crate::init_test_log();
        PostgresCluster::shared()?.create_database().await
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                admin.execute(statement.as_str()).await?;
                anyhow::Ok(())
            })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("could not drop test database: {error:#}");
        }
    }
}

fn database_url(admin_url: &str, name: &str) -> Result<String> {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let Some(slash) = base.rfind('/').filter(|&i| i > "postgres://".len()) else {
        bail!("DATABASE_URL must name a database: {admin_url}");
    };
    let mut url = format!("{}/{name}", &base[..slash]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    Ok(url)
}

/// PostgreSQL's server programs: `PG_BIN` or the newest `/usr/lib/postgresql/*/bin`.
pub fn postgres_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (no /usr/lib/postgresql); run scripts/install-deps")?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .context("no PostgreSQL server found under /usr/lib/postgresql")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// initdb refuses to run as root: run PostgreSQL's programs as the `postgres` user then.
fn postgres_command(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command) -> Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// A detached watchdog that stops the cluster and removes its directory once this process is
/// gone, however it ends.
fn watch_and_remove(as_root: bool, bin: &Path, dir: &Path) -> Result<()> {
    let pg_ctl = bin.join("pg_ctl");
    let stop = if as_root {
        format!(
            "runuser -u postgres -- {} -D {}/data -m immediate stop",
            pg_ctl.display(),
            dir.display()
        )
    } else {
        format!(
            "{} -D {}/data -m immediate stop",
            pg_ctl.display(),
            dir.display()
        )
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        dir = dir.display()
    );
    Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the cluster's watchdog")?;
    Ok(())
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
