//! A large log written fast: `users` `UserCreated` events inserted with SQL from one event the
//! domain encoded, with ids derived from a counter (so pgbench and load generators can pick
//! random existing users without a lookup).

use anyhow::Context;
use chrono::Utc;
use event_store::postgres::PostgresEventStore;
use events::metadata::{encode_all, Actor, CommandContext};
use events::user::{CreateUser, User, UserCommand};
use events::values::{Credits, Email, PersonName, RoleId, SecretHash, UserId, Username};
use events::Aggregate;
use uuid::Uuid;

/// Events per seeding transaction (positions hold 65,536 events per transaction).
const SEED_BATCH: u64 = 50_000;
const TEMPLATE_NAME: &str = "zqxtmpl";

/// The id of seeded user `n` (1-based): UUIDv7-shaped, in `n` order, computable in SQL too.
pub fn user_id(n: u64) -> String {
    format!("01900000-0000-7000-8000-{n:012x}")
}

/// A plain user named `name` (`<name>@example.com`, "Seed User", role `user`, no credits).
pub fn bench_user(id: UserId, name: &str, password_hash: SecretHash) -> anyhow::Result<CreateUser> {
    let parse = |e: events::values::ValidationError| anyhow::anyhow!(e.msg);
    Ok(CreateUser {
        id,
        username: Username::parse(name).map_err(parse)?,
        email: Email::parse(&format!("{name}@example.com")).map_err(parse)?,
        password_hash,
        first_name: PersonName::parse("Seed").map_err(parse)?,
        last_name: PersonName::parse("User").map_err(parse)?,
        middle_name: None,
        role: RoleId::user(),
        phone: None,
        phone_country_code: None,
        credits: Credits::new(0),
        invite_codes: Vec::new(),
        invited_by: None,
    })
}

/// `users` UserCreated events, written with SQL from one event the domain encoded.
pub async fn seed(store: &PostgresEventStore, users: u64) -> anyhow::Result<()> {
    let template_id = UserId::from_uuid(Uuid::parse_str(&user_id(0))?);
    let create = bench_user(
        template_id,
        TEMPLATE_NAME,
        SecretHash::parse("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .map_err(|e| anyhow::anyhow!(e.msg))?,
    )?;
    let context = CommandContext::new(Uuid::now_v7(), Actor::system(), Utc::now());
    let decided = User::decide(&None, UserCommand::Create(create), &context)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let encoded = encode_all(&decided, &context)?;
    let created = encoded
        .iter()
        .find(|e| e.event_type == "UserCreated")
        .context("a UserCreated event")?;
    let data = created.data.to_string();
    let metadata = created.metadata.to_string();
    let mut n = 0;
    while n < users {
        let count = SEED_BATCH.min(users - n);
        sqlx::query(
            "INSERT INTO events (position, stream_id, revision, tx, event_id, event_type, data, metadata)
             SELECT (pg_current_xact_id()::text::bigint << 16) + g - 1, 'user-' || u.id, 0,
                    pg_current_xact_id(), gen_random_uuid(), 'UserCreated',
                    replace(replace($1, $2, u.id), $3, 'u' || lpad(u.n::text, 8, '0'))::jsonb,
                    $4::jsonb
               FROM generate_series(1, $5::bigint) g,
                    LATERAL (SELECT $6::bigint + g AS n,
                                    '01900000-0000-7000-8000-' || lpad(to_hex($6::bigint + g), 12, '0') AS id) u",
        )
        .bind(&data)
        .bind(user_id(0))
        .bind(TEMPLATE_NAME)
        .bind(&metadata)
        .bind(count as i64)
        .bind(n as i64)
        .execute(store.pool())
        .await?;
        n += count;
    }
    // As autovacuum would soon: without statistics, plans over the fresh million rows are
    // guesses (seen: sequential scans for a lookup of a few streams).
    sqlx::query("ANALYZE events").execute(store.pool()).await?;
    Ok(())
}
