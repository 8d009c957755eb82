//! Running every read model of the query service: one projector each, restarted after a
//! failure (a lost connection, a store error) until shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use events::store::EventStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::runtime::{Progress, Projection, Projector};
use crate::{read_models, READ_MODEL_SCHEMA};

/// How long a failed projector waits before it starts again.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// The running read models.
pub struct ReadModels {
    /// One task per projection; each ends after shutdown is asked.
    pub tasks: Vec<JoinHandle<()>>,
    /// Each projection's progress, by projection name (`users`, `roles`, `applications`,
    /// `invite_codes`, `social`).
    pub progress: HashMap<&'static str, watch::Receiver<Progress>>,
}

impl ReadModels {
    /// Waits until every projector has stopped (after `shutdown` turned true).
    pub async fn stopped(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Starts the projectors of every read model (in [`READ_MODEL_SCHEMA`] of `database_url`),
/// following `store` until `shutdown` turns true. Several processes may call this: each
/// projection runs in one of them at a time, the others wait as standbys.
pub fn spawn_read_models(
    store: Arc<dyn EventStore>,
    database_url: &str,
    shutdown: watch::Receiver<bool>,
) -> ReadModels {
    let mut models = ReadModels {
        tasks: Vec::new(),
        progress: HashMap::new(),
    };
    for projection in read_models() {
        spawn(&mut models, projection, &store, database_url, &shutdown);
    }
    models
}

fn spawn<P: Projection>(
    models: &mut ReadModels,
    projection: P,
    store: &Arc<dyn EventStore>,
    database_url: &str,
    shutdown: &watch::Receiver<bool>,
) {
    let name = projection.name();
    let projector = Projector::new(projection, store.clone(), database_url, READ_MODEL_SCHEMA);
    models.progress.insert(name, projector.progress());
    let mut shutdown = shutdown.clone();
    models.tasks.push(tokio::spawn(async move {
        loop {
            match projector.run(shutdown.clone()).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::error!(
                        projection = name,
                        error = format!("{error:#}"),
                        "projector failed; restarting"
                    );
                }
            }
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(RESTART_DELAY) => {}
                changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { break },
            }
        }
    }));
}
