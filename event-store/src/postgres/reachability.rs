//! Failing fast while the server is known to be unreachable. Once an operation of the store
//! found it so (no connection could be had within the pool's wait: one connection lost, as a
//! proxy or `pg_terminate_backend` cuts one, is not the server down), every operation answers
//! [`StoreError::Unreachable`] at once for [`NOT_TRIED_FOR`], instead of each waiting for a
//! connection in turn: commands that take turns on a stream would otherwise wait for each
//! other's waits, and a caller for all of them. Then operations try the server again.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use events::store::StoreError;

/// How long the store answers at once, without trying, after the server was found unreachable.
const NOT_TRIED_FOR: Duration = Duration::from_millis(500);

pub(crate) struct Reachability {
    since: Instant,
    /// Until when (in microseconds after `since`) operations are not tried; 0 when they are.
    down_until: AtomicU64,
}

impl Default for Reachability {
    fn default() -> Self {
        Self {
            since: Instant::now(),
            down_until: AtomicU64::new(0),
        }
    }
}

impl Reachability {
    /// Runs `operation`, unless the server was found unreachable a moment ago.
    pub(crate) async fn guard<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if self.now() < self.down_until.load(Ordering::Relaxed) {
            return Err(StoreError::Unreachable(
                "the database was unreachable a moment ago; not tried again yet".into(),
            ));
        }
        let outcome = operation.await;
        if let Err(StoreError::Unreachable(cause)) = &outcome {
            let no_connection = matches!(
                cause.downcast_ref::<sqlx::Error>(),
                Some(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
            );
            if !no_connection {
                return outcome;
            }
            let until = self.now() + NOT_TRIED_FOR.as_micros() as u64;
            self.down_until.fetch_max(until, Ordering::Relaxed);
        }
        outcome
    }

    fn now(&self) -> u64 {
        self.since.elapsed().as_micros() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn after_an_unreachable_answer_operations_are_not_tried_for_a_moment() {
        let reachability = Reachability::default();
        let unreachable =
            || async { Err::<(), _>(StoreError::Unreachable(Box::new(sqlx::Error::PoolTimedOut))) };
        let one_lost = || async {
            let lost = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
            Err::<(), _>(StoreError::Unreachable(Box::new(sqlx::Error::Io(lost))))
        };
        let tried = std::sync::atomic::AtomicUsize::new(0);
        let operation = || async {
            tried.fetch_add(1, Ordering::Relaxed);
            Ok::<_, StoreError>(())
        };
        assert!(reachability.guard(operation()).await.is_ok());
        // One connection lost is not the server down.
        let _ = reachability.guard(one_lost()).await;
        assert!(reachability.guard(operation()).await.is_ok());
        let _ = reachability.guard(unreachable()).await;
        assert!(matches!(
            reachability.guard(operation()).await,
            Err(StoreError::Unreachable(_))
        ));
        assert_eq!(tried.load(Ordering::Relaxed), 2, "not tried while down");
        tokio::time::sleep(NOT_TRIED_FOR).await;
        assert!(reachability.guard(operation()).await.is_ok());
        assert_eq!(tried.load(Ordering::Relaxed), 3);
        // Other failures change nothing.
        let failed = || async { Err::<(), _>(StoreError::InvalidAppend("no".into())) };
        let _ = reachability.guard(failed()).await;
        assert!(reachability.guard(operation()).await.is_ok());
    }
}
