//! The service in a process of its own, as deployed: `userledger <subcommand>` built in release
//! mode, on a free port of 127.0.0.1, with the test settings' bootstrap admin and client.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use test_support::app::{
    ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_USERNAME, CLIENT_ID, CLIENT_SECRET, TOKEN_SECRET,
};
use tokio::process::{Child, Command};

/// A running `userledger` process; killed when dropped.
pub struct Service {
    pub base: String,
    /// The base URL of the liveness port (`USERLEDGER_HEALTH_LISTEN`): `/health` alone, on a
    /// thread of its own.
    pub liveness: String,
    process: Child,
}

impl Service {
    /// Builds `userledger` (release) and starts `userledger <subcommand>` on `database_url`,
    /// with its defaults except: the bootstrap admin and client, rate limits off (a load
    /// generator is one client on one address), and `env`. Waits until `/health` answers.
    pub async fn start(
        subcommand: &str,
        database_url: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let binary = build_release_binary()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let liveness_port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let process = Command::new(&binary)
            .arg(subcommand)
            .env("DATABASE_URL", database_url)
            .env_remove("EVENTSTORE_URL")
            .env_remove("KAFKA_BROKERS")
            .env("USERLEDGER_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "USERLEDGER_HEALTH_LISTEN",
                format!("127.0.0.1:{liveness_port}"),
            )
            .env(
                "USERLEDGER_TOKEN_SECRET",
                String::from_utf8_lossy(TOKEN_SECRET).as_ref(),
            )
            .env("USERLEDGER_BOOTSTRAP_ADMIN_USERNAME", ADMIN_USERNAME)
            .env("USERLEDGER_BOOTSTRAP_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("USERLEDGER_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("USERLEDGER_BOOTSTRAP_CLIENT_ID", CLIENT_ID)
            .env("USERLEDGER_BOOTSTRAP_CLIENT_SECRET", CLIENT_SECRET)
            .env("USERLEDGER_RATE_LIMIT_TOKEN_PER_MINUTE", "0")
            .env("USERLEDGER_RATE_LIMIT_WRITES_PER_MINUTE", "0")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(response) = http.get(format!("{base}/health")).send().await {
                if response.status().is_success() {
                    break;
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("userledger {subcommand} did not answer /health within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            base,
            liveness: format!("http://127.0.0.1:{liveness_port}"),
            process,
        })
    }

    /// The process's resident memory in MiB, now and at its peak (`VmRSS` and `VmHWM`).
    pub fn resident_mib(&self) -> anyhow::Result<(f64, f64)> {
        let pid = self.process.id().context("the service has exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> anyhow::Result<f64> {
            let line = status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
            let kib: f64 = line.trim().trim_end_matches("kB").trim().parse()?;
            Ok(kib / 1024.0)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }
}

/// `cargo build --release --bin userledger`: the binary as deployed, never a stale one.
fn build_release_binary() -> anyhow::Result<PathBuf> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the workspace")?
        .to_owned();
    let mut cargo = std::process::Command::new(env!("CARGO"));
    // What `cargo run` set for this program would make cargo build the binary anew each time
    // (build scripts watch some of these).
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "OUT_DIR",
            ]
            .contains(&name.as_ref())
        {
            cargo.env_remove(name.as_ref());
        }
    }
    let status = cargo
        .current_dir(&workspace)
        .args(["build", "--release", "--quiet", "--bin", "userledger"])
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo build --release --bin userledger failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    Ok(target.join("release").join("userledger"))
}
