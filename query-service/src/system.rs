//! What Liquid's callers read about the service itself: without a token, the scope catalogue
//! (`GET /user/scopes`), the version (`GET /system/version`) and the countries
//! (`GET /system/countries-insecure`); with one, the process's figures
//! (`GET /system/{admin,client}-api/stats`).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use events::scopes::{describe, ScopeCatalogue};
use http_edge::envelope::{Answer, ApiError};
use serde::Serialize;
use sysinfo::{
    CpuRefreshKind, MemoryRefreshKind, ProcessRefreshKind, ProcessesToUpdate, RefreshKind, System,
};
use utoipa::ToSchema;

/// `GET /user/scopes`'s answer: every scope of the catalogue by its name.
#[derive(Debug, Serialize, ToSchema)]
pub struct Scopes {
    pub scopes: BTreeMap<String, ScopeEntry>,
}

/// A scope, its description and its parent (every scope has one but `*`, which grants all).
#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeEntry {
    pub name: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// `GET /user/scopes`.
pub async fn scopes() -> Answer {
    let catalogue = ScopeCatalogue::get();
    let scopes = catalogue
        .all()
        .map(|name| {
            let entry = ScopeEntry {
                name: name.to_owned(),
                description: describe(name),
                parent: catalogue.parent(name).map(str::to_owned),
            };
            (name.to_owned(), entry)
        })
        .collect();
    Answer::ok(Scopes { scopes })
}

/// `GET /system/version`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Version {
    /// This build's version (the crate's).
    pub version: &'static str,
}

/// `GET /system/version`.
pub async fn version() -> Answer {
    Answer::ok(Version {
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// One country of `GET /system/countries-insecure`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Country {
    /// Its English short name (ISO 3166-1).
    pub name: &'static str,
    /// Its international calling code, with a leading `+` (for example `+44`).
    pub code: String,
    /// Its ISO 3166-1 alpha-2 code.
    pub iso: &'static str,
}

/// `GET /system/countries-insecure`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Countries {
    pub countries: &'static [Country],
}

/// Every ISO 3166-1 country that has an international calling code, by name: the names and
/// codes from `rust_iso3166`, the calling codes from libphonenumber's metadata
/// (`phonenumber`). Territories without a calling code of their own (Antarctica, Bouvet
/// Island, ...) are left out, as a phone-number form cannot use them.
pub fn countries() -> &'static [Country] {
    static COUNTRIES: OnceLock<Vec<Country>> = OnceLock::new();
    COUNTRIES.get_or_init(|| {
        let mut countries: Vec<Country> = rust_iso3166::ALL
            .iter()
            .filter_map(|country| {
                let metadata = phonenumber::metadata::DATABASE.by_id(country.alpha2)?;
                Some(Country {
                    name: country.name,
                    code: format!("+{}", metadata.country_code()),
                    iso: country.alpha2,
                })
            })
            .collect();
        countries.sort_by(|a, b| a.name.cmp(b.name));
        countries
    })
}

/// `GET /system/countries-insecure`.
pub async fn countries_insecure() -> Answer {
    Answer::ok(Countries {
        countries: countries(),
    })
}

/// `GET /system/{admin,client}-api/stats`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    pub stats: ProcessStats,
}

/// This process and its machine, by Liquid's names. Memory figures are in MB, rounded to
/// two decimals. A Rust process has no managed heap: `heapUsed` and `heapTotal` are its
/// resident memory and `heapLimit` the machine's, so that a dashboard's "heap" gauge shows
/// the share of memory the process holds.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessStats {
    pub process_id: u32,
    /// `linux`, `macos`, ... (Rust's `std::env::consts::OS`).
    pub platform: &'static str,
    pub arch: &'static str,
    /// userledger's version.
    pub version: &'static str,
    pub cpu_make: String,
    pub cpu_count: usize,
    /// The machine's load average over 1, 5 and 15 minutes.
    pub load_avg: [f64; 3],
    /// Seconds since the process started.
    pub up_time: f64,
    /// Requests this process has answered (what `/metrics` counts as
    /// `userledger_http_requests_total`).
    pub requests_handled: u64,
    pub heap_total: f64,
    pub heap_used: f64,
    pub heap_limit: f64,
    pub rss: f64,
    pub system_total_memory: f64,
    pub system_free_memory: f64,
}

/// What `sysinfo` keeps between two readings (refreshed, not rebuilt, on each request), and
/// the CPU's make.
type Machine = Mutex<(System, String)>;

/// The process's [`Machine`], made on first use.
fn machine() -> anyhow::Result<&'static Machine> {
    static MACHINE: OnceLock<Machine> = OnceLock::new();
    if let Some(machine) = MACHINE.get() {
        return Ok(machine);
    }
    let system = System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing())
            .with_memory(MemoryRefreshKind::nothing().with_ram()),
    )?;
    let cpu_make = system
        .cpus()
        .first()
        .map(|cpu| cpu.brand().trim().to_owned())
        .filter(|brand| !brand.is_empty())
        .unwrap_or_else(|| "Unknown".to_owned());
    Ok(MACHINE.get_or_init(|| Mutex::new((system, cpu_make))))
}

/// Bytes as MB with two decimals, as Liquid shows them.
fn megabytes(bytes: u64) -> f64 {
    (bytes as f64 / 1_048_576.0 * 100.0).round() / 100.0
}

/// `GET /system/{admin,client}-api/stats`.
pub async fn stats() -> Result<Answer, ApiError> {
    let stats = tokio::task::spawn_blocking(|| {
        let mut machine = machine()?.lock().unwrap_or_else(|p| p.into_inner());
        let (system, cpu_make) = &mut *machine;
        let pid = sysinfo::get_current_pid()?;
        system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            false,
            ProcessRefreshKind::nothing().with_memory(),
        );
        let process = system
            .process(pid)
            .ok_or_else(|| anyhow::anyhow!("this process is not in the process table"))?;
        let load = System::load_average()?;
        let round = |x: f64| (x * 100.0).round() / 100.0;
        let rss = megabytes(process.memory());
        let total = megabytes(system.total_memory());
        anyhow::Ok(ProcessStats {
            process_id: pid.as_u32(),
            platform: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            version: env!("CARGO_PKG_VERSION"),
            cpu_make: cpu_make.clone(),
            cpu_count: system.cpus().len(),
            load_avg: [round(load.one), round(load.five), round(load.fifteen)],
            up_time: process.run_time() as f64,
            requests_handled: http_edge::telemetry::requests_handled(),
            heap_total: rss,
            heap_used: rss,
            heap_limit: total,
            rss,
            system_total_memory: total,
            system_free_memory: megabytes(system.available_memory()),
        })
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok(Answer::ok(Stats { stats }))
}
