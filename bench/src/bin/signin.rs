//! Complete sign-ins per second: `POST /user/login` (one argon2id verification), then
//! `GET /oauth/authorize` with the session cookie (a code), then `POST /oauth/token` with the
//! code and its PKCE verifier (tokens), as a browser and a public single-page app make them,
//! beside this machine's raw argon2id rate measured in the same run (the goal: at least 0.9 of
//! it), while a concurrent reader times `GET /health` (the goal: p99 under 5 ms).
//!
//! `cargo run --release -p userledger-bench --bin signin`
//!
//! The service runs in this process on a throwaway durable PostgreSQL (or
//! `BENCH_DATABASE_URL`). The raw rate and the sign-ins are measured in three alternating
//! rounds (the machine's speed drifts) and compared in total. `BENCH_SECONDS` sets each
//! measurement's length (default 5). Prints a table and writes `bench/results/signin.json`.

use anyhow::{bail, Context};
use base64::Engine;
use event_store::postgres::PostgresEventStore;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use test_support::app::{test_settings, ADMIN_PASSWORD, ADMIN_USERNAME};
use userledger_bench::{
    admin_token, drive, machine, raw_hash_rate, scenario_duration, with_health, write_results,
};

const CLIENT_ID: &str = "bench_spa";
const CALLBACK: &str = "http://127.0.0.1:9/callback";
const VERIFIER: &str = "a-benchmark-verifier-of-at-least-43-characters-0123456789";
/// Concurrent people signing in: enough to keep every hashing worker busy.
const PEOPLE: usize = 16;
/// Alternating rounds of raw hashing and sign-ins.
const ROUNDS: usize = 3;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let duration = scenario_duration(5);
    let database = userledger_bench::durable_database().await?;
    let store = Arc::new(PostgresEventStore::connect(database.url(), 100).await?);
    let mut settings = test_settings();
    // One person signs in over and over from one address: nothing fails, nothing to limit.
    settings.sign_in_failures_per_account = 0;
    settings.sign_in_failures_per_ip = 0;
    let base = userledger_bench::serve_write_side(&store, settings.clone()).await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(PEOPLE * 2)
        .build()?;
    let token = admin_token(&http, &base).await?;
    let response = http
        .post(format!("{base}/client/admin-api/create"))
        .bearer_auth(&token)
        .json(&json!({
            "id": CLIENT_ID, "displayName": "Benchmark single-page app",
            "role": "internal_client", "isPublic": true,
            "grants": ["authorization_code", "refresh_token"], "redirectUris": [CALLBACK],
        }))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("registering the application: {}", response.text().await?);
    }

    // The machine's speed drifts over seconds: the raw rate and the sign-ins are measured in
    // alternating rounds, and compared in total.
    let workers = settings.hashing_workers;
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let hashes = raw_hash_rate(workers, duration).await?;
        let load = drive(PEOPLE, duration, 1_000_000, {
            let (http, base) = (http.clone(), base.clone());
            move |_, _| {
                let (http, base) = (http.clone(), base.clone());
                async move { sign_in(&http, &base).await }
            }
        });
        let (signins, mut health) = with_health(&[format!("{base}/health")], load).await;
        rounds.push((hashes, signins, health.remove(0)));
    }
    let hash_rate = rounds.iter().map(|(h, ..)| h).sum::<f64>() / ROUNDS as f64;
    let signin_rate = rounds.iter().map(|(_, s, _)| s.operations).sum::<u64>() as f64
        / rounds.iter().map(|(_, s, _)| s.seconds).sum::<f64>();
    let ratio = signin_rate / hash_rate;
    let worst_health_p99 = rounds
        .iter()
        .map(|(.., h)| h.p99_ms)
        .fold(0.0_f64, f64::max);
    let errors: u64 = rounds.iter().map(|(_, s, h)| s.errors + h.errors).sum();

    println!(
        "{:<8} {:>12} {:>10} {:>7} {:>8} {:>8} {:>12} {:>7}",
        "round", "argon2id /s", "sign-ins/s", "ratio", "p50 ms", "p99 ms", "health p99", "errors"
    );
    for (i, (hashes, signins, health)) in rounds.iter().enumerate() {
        println!(
            "{:<8} {:>12.1} {:>10.1} {:>7.2} {:>8.1} {:>8.1} {:>12.2} {:>7}",
            i + 1,
            hashes,
            signins.per_second,
            signins.per_second / hashes,
            signins.p50_ms,
            signins.p99_ms,
            health.p99_ms,
            signins.errors + health.errors
        );
    }
    println!(
        "{:<8} {hash_rate:>12.1} {signin_rate:>10.1} {ratio:>7.2}",
        "all"
    );
    let met = ratio >= 0.9 && worst_health_p99 < 5.0;
    println!(
        "target: sign-ins {ratio:.2} of raw argon2id (>= 0.9); health p99 at most {worst_health_p99:.2} ms (< 5); {errors} errors: {}",
        if met { "met" } else { "NOT met" }
    );
    let path = write_results(
        "signin.json",
        &json!({
            "benchmark": "signin",
            "machine": machine(),
            "people": PEOPLE,
            "hashing_workers": workers,
            "rounds": rounds.iter().map(|(hashes, signins, health)| json!({
                "raw_argon2id_per_second": hashes,
                "sign_ins": signins,
                "health_meanwhile": health,
            })).collect::<Vec<_>>(),
            "raw_argon2id_per_second": hash_rate,
            "sign_ins_per_second": signin_rate,
            "ratio_to_raw_argon2id": ratio,
            "health_p99_ms_worst_round": worst_health_p99,
            "target_met": met,
        }),
    )?;
    println!("wrote {}", path.display());
    Ok(())
}

/// One person: signs in, authorizes, trades the code.
async fn sign_in(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let login = http
        .post(format!("{base}/user/login"))
        .json(&json!({ "username": ADMIN_USERNAME, "password": ADMIN_PASSWORD }))
        .send()
        .await?;
    if !login.status().is_success() {
        bail!("login: {}", login.status());
    }
    let session = login
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|cookie| cookie.starts_with("userledger_session="))
        .and_then(|cookie| cookie.split(';').next())
        .context("a session cookie")?
        .to_owned();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(VERIFIER.as_bytes()));
    let authorized = http
        .get(format!("{base}/oauth/authorize"))
        .query(&[
            ("client_id", CLIENT_ID),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
            ("state", "bench"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .header(COOKIE, session)
        .send()
        .await?;
    let location = authorized
        .headers()
        .get(LOCATION)
        .and_then(|value| value.to_str().ok())
        .context("a redirect with the code")?;
    let code = url::Url::parse(location)?
        .query_pairs()
        .find(|(name, _)| name == "code")
        .map(|(_, code)| code.into_owned())
        .context("a code")?;
    let tokens = http
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", CALLBACK),
            ("code", &code),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await?;
    if !tokens.status().is_success() {
        bail!("token: {}", tokens.status());
    }
    Ok(())
}
