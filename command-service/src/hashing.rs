//! Password and client-secret hashing: argon2id with OWASP's parameters (m = 19 MiB, t = 2,
//! p = 1), on a bounded pool of blocking threads. When every worker is busy and the queue is
//! full, callers get [`ApiError::Busy`] (503 with Retry-After) at once instead of piling up.

use std::sync::{Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use events::values::SecretHash;
use tokio::sync::Semaphore;

use http_edge::envelope::ApiError;

/// OWASP's argon2id recommendation (m = 19 MiB, t = 2, p = 1).
pub const MEMORY_KIB: u32 = 19 * 1024;
pub const ITERATIONS: u32 = 2;
pub const PARALLELISM: u32 = 1;

/// Stored hashes asking for more than this are refused, not computed: a forged or corrupted
/// hash must not be able to take the machine's memory or time.
const MAX_MEMORY_KIB: u32 = 256 * 1024;
const MAX_ITERATIONS: u32 = 16;
const MAX_PARALLELISM: u32 = 8;

#[derive(Clone)]
pub struct Hasher {
    /// Admission: workers plus queue. A request that cannot get one is refused at once.
    admitted: Arc<Semaphore>,
    /// Running computations.
    workers: Arc<Semaphore>,
    memory: Memory,
}

/// argon2id's working memory (19 MiB), kept between computations: allocating and zeroing it
/// for each one costs about a tenth of the computation. At most one buffer per worker is kept.
#[derive(Clone, Default)]
struct Memory(Arc<Mutex<Vec<Vec<Block>>>>);

impl Memory {
    /// Computes `argon2`'s output for `secret` and `salt` into `out`, in a kept buffer.
    fn compute(
        &self,
        argon2: &Argon2<'_>,
        secret: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> anyhow::Result<()> {
        let kept = || {
            self.0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        let mut blocks = kept().pop().unwrap_or_default();
        let needed = argon2.params().block_count();
        if blocks.len() < needed {
            blocks.resize(needed, Block::default());
        }
        let computed =
            argon2.hash_password_into_with_memory(secret, salt, out, &mut blocks[..needed]);
        // A buffer grown for an unusually costly stored hash is not kept.
        if blocks.len() <= default_block_count() {
            kept().push(blocks);
        }
        computed.map_err(|e| anyhow::anyhow!("argon2id: {e}"))
    }
}

fn default_block_count() -> usize {
    argon2().params().block_count()
}

impl Hasher {
    pub fn new(workers: usize, queue: usize) -> Self {
        Self {
            admitted: Arc::new(Semaphore::new(workers + queue)),
            workers: Arc::new(Semaphore::new(workers)),
            memory: Memory::default(),
        }
    }

    /// Hashes a secret with a fresh salt.
    pub async fn hash(&self, secret: &str) -> Result<SecretHash, ApiError> {
        let (secret, memory) = (secret.to_owned(), self.memory.clone());
        let phc = self
            .run(move || {
                let salt = SaltString::generate(&mut OsRng);
                let mut salt_bytes = [0u8; 64];
                let salt_bytes = salt
                    .decode_b64(&mut salt_bytes)
                    .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
                let argon2 = argon2();
                let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
                memory.compute(&argon2, secret.as_bytes(), salt_bytes, &mut out)?;
                let phc = PasswordHash {
                    algorithm: Algorithm::Argon2id.ident(),
                    version: Some(Version::V0x13.into()),
                    params: ParamsString::try_from(argon2.params())
                        .map_err(|e| anyhow::anyhow!("parameters: {e}"))?,
                    salt: Some(salt.as_salt()),
                    hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("output: {e}"))?),
                };
                Ok(phc.to_string())
            })
            .await??;
        SecretHash::parse(&phc).map_err(|e| ApiError::internal(anyhow::anyhow!(e.msg)))
    }

    /// Whether `secret` matches `hash`. A hash with parameters outside sane bounds is refused
    /// (an internal error), never computed.
    pub async fn verify(&self, secret: &str, hash: &SecretHash) -> Result<bool, ApiError> {
        check_parameters(hash.expose())?;
        let (secret, hash, memory) = (
            secret.to_owned(),
            hash.expose().to_owned(),
            self.memory.clone(),
        );
        self.run(move || {
            let stored = |e: &dyn std::fmt::Display| anyhow::anyhow!("stored hash: {e}");
            let parsed = PasswordHash::new(&hash).map_err(|e| stored(&e))?;
            let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
                return Err(stored(&"no salt or no output"));
            };
            let version = match parsed.version {
                Some(version) => Version::try_from(version).map_err(|e| stored(&e))?,
                None => Version::default(),
            };
            let params = Params::try_from(&parsed).map_err(|e| stored(&e))?;
            let argon2 = Argon2::new(Algorithm::Argon2id, version, params);
            let mut salt_bytes = [0u8; 64];
            let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| stored(&e))?;
            let mut out = vec![0u8; expected.len()];
            memory.compute(&argon2, secret.as_bytes(), salt_bytes, &mut out)?;
            // Output's equality takes the same time wherever the outputs differ.
            Ok(Output::new(&out).is_ok_and(|computed| computed == expected))
        })
        .await?
        .map_err(ApiError::Internal)
    }

    /// Runs `work` on the blocking pool, at most `workers` at a time.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Result<anyhow::Result<T>, ApiError> {
        let _admitted = self.admitted.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("userledger_hashing_rejected_total").increment(1);
            ApiError::Busy {
                retry_after_secs: 1,
            }
        })?;
        let waiting = metrics::gauge!("userledger_hashing_waiting");
        waiting.increment(1.0);
        let worker = self.workers.clone().acquire_owned().await;
        waiting.decrement(1.0);
        let _worker = worker.map_err(ApiError::internal)?;
        let in_flight = metrics::gauge!("userledger_hashing_in_flight");
        in_flight.increment(1.0);
        let done = tokio::task::spawn_blocking(work).await;
        in_flight.decrement(1.0);
        done.map_err(ApiError::internal)
    }

    /// How many more requests could be admitted now (for saturation metrics).
    pub fn available(&self) -> usize {
        self.admitted.available_permits()
    }
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .expect("OWASP's argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn check_parameters(phc: &str) -> Result<(), ApiError> {
    let refuse = |why: String| ApiError::internal(anyhow::anyhow!("refusing a stored hash: {why}"));
    let parsed = PasswordHash::new(phc).map_err(|e| refuse(e.to_string()))?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(refuse(format!("algorithm {}", parsed.algorithm)));
    }
    let params = Params::try_from(&parsed).map_err(|e| refuse(e.to_string()))?;
    if params.m_cost() > MAX_MEMORY_KIB
        || params.t_cost() > MAX_ITERATIONS
        || params.p_cost() > MAX_PARALLELISM
    {
        return Err(refuse(format!(
            "parameters m={} t={} p={} are beyond bounds",
            params.m_cost(),
            params.t_cost(),
            params.p_cost()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_use_owasp_parameters() {
        let hasher = Hasher::new(1, 1);
        let hash = hasher.hash("correct horse battery").await.unwrap();
        assert!(hash.expose().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hasher.verify("correct horse battery", &hash).await.unwrap());
        assert!(!hasher.verify("wrong horse battery", &hash).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_agree_with_the_crates_own_hashing_whatever_buffer_is_reused() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let hasher = Hasher::new(2, 2);
        // The crate's own hashing, with other parameters than ours (a smaller buffer)...
        let cheap = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        );
        let salt = SaltString::generate(&mut OsRng);
        let theirs = cheap.hash_password(b"tr0ub4dor&3", &salt).unwrap();
        let theirs = SecretHash::parse(&theirs.to_string()).unwrap();
        for _ in 0..2 {
            // ...verifies through a kept buffer, before and after an OWASP-sized one...
            assert!(hasher.verify("tr0ub4dor&3", &theirs).await.unwrap());
            assert!(!hasher.verify("tr0ub4dor&4", &theirs).await.unwrap());
            // ...and ours verifies with the crate's own verifier.
            let ours = hasher.hash("correct horse battery").await.unwrap();
            let parsed = PasswordHash::new(ours.expose()).unwrap();
            assert!(Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok());
            assert!(Argon2::default()
                .verify_password(b"correct horse batterz", &parsed)
                .is_err());
        }
    }

    #[tokio::test]
    async fn absurd_parameters_are_refused_not_computed() {
        let hasher = Hasher::new(1, 1);
        let absurd = SecretHash::parse(
            "$argon2id$v=19$m=4194304,t=1000,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .unwrap();
        let started = std::time::Instant::now();
        assert!(hasher.verify("anything at all", &absurd).await.is_err());
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        let hasher = Hasher::new(1, 1);
        let _working = hasher.admitted.clone().try_acquire_owned().unwrap();
        let _waiting = hasher.admitted.clone().try_acquire_owned().unwrap();
        let started = std::time::Instant::now();
        let refused = hasher.hash("another password").await;
        assert!(matches!(
            refused,
            Err(ApiError::Busy {
                retry_after_secs: 1
            })
        ));
        assert!(started.elapsed() < std::time::Duration::from_millis(50));
    }
}
