//! Waiting for a condition in a test: a bounded poll that fails with a clear message at its
//! deadline, in place of a fixed sleep (too short on a loaded machine, too long elsewhere) or
//! of a loop that gives up quietly and lets a later assertion fail for the wrong reason.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How often a condition is looked at again.
const POLL: Duration = Duration::from_millis(20);

/// Polls `check` until it answers `Ok`, and returns what it answered. `check` answers `Err`
/// with what it saw while the condition does not hold yet; if it still does not hold after
/// `within`, this panics naming `what` and the last thing seen.
pub async fn eventually<T, E, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    E: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(done) => return done,
            Err(seen) if Instant::now() >= deadline => {
                panic!("{what}: still not so after {within:?}; last seen: {seen:?}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// `Ok(())` when `holds`, or else `Err(seen)`: a condition and what to report while it fails,
/// for [`eventually`].
pub fn holds<E>(holds: bool, seen: E) -> Result<(), E> {
    if holds {
        Ok(())
    } else {
        Err(seen)
    }
}
