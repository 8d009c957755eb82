//! Running every read model of the query service, and the Kafka publisher when configured: one
//! task each, restarted after a failure (a lost connection, a store error) until shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use events::store::EventStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::publisher::{self, KafkaSettings, Publisher};
use crate::runtime::{Progress, Projection, Projector};
use crate::{read_models, READ_MODEL_SCHEMA};

/// How long a failed projector waits before it starts again.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// The running read models (and publisher).
#[derive(Default)]
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

impl ReadModels {
    /// Adds the Kafka publisher, run like the projectors (one active instance across
    /// processes, restarted after a failure); its progress is listed as
    /// [`publisher::NAME`](crate::publisher::NAME).
    pub fn with_publisher(
        mut self,
        store: Arc<dyn EventStore>,
        database_url: &str,
        settings: KafkaSettings,
        shutdown: &watch::Receiver<bool>,
    ) -> Self {
        let publisher = Arc::new(Publisher::new(store, database_url, settings));
        self.progress.insert(publisher::NAME, publisher.progress());
        self.tasks
            .push(supervise(publisher::NAME, shutdown, move |shutdown| {
                let publisher = publisher.clone();
                async move { publisher.run(shutdown).await }
            }));
        self
    }
}

fn spawn<P: Projection>(
    models: &mut ReadModels,
    projection: P,
    store: &Arc<dyn EventStore>,
    database_url: &str,
    shutdown: &watch::Receiver<bool>,
) {
    let name = projection.name();
    let projector = Arc::new(Projector::new(
        projection,
        store.clone(),
        database_url,
        READ_MODEL_SCHEMA,
    ));
    models.progress.insert(name, projector.progress());
    models
        .tasks
        .push(supervise(name, shutdown, move |shutdown| {
            let projector = projector.clone();
            async move { projector.run(shutdown).await }
        }));
}

/// Runs `run` until it ends cleanly or shutdown is asked, starting it again after a failure.
fn supervise<F, R>(name: &'static str, shutdown: &watch::Receiver<bool>, run: F) -> JoinHandle<()>
where
    F: Fn(watch::Receiver<bool>) -> R + Send + 'static,
    R: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let mut shutdown = shutdown.clone();
    tokio::spawn(async move {
        loop {
            match run(shutdown.clone()).await {
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
    })
}
