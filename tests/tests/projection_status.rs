//! `GET /projections/status` and `GET /metrics`: each read model's position and lag, and
//! whether this process runs it.

use std::time::Duration;

use command_service::Application;
use events::store::{EventStore, Position};
use serde_json::Value;
use test_support::app::test_settings;
use test_support::wait::{eventually, holds};
use test_support::{spawn_app, TestDatabase};

async fn head(store: &dyn EventStore) -> Position {
    let mut last = None;
    loop {
        let page = store.read_all(last, 1_000).await.expect("the log reads");
        match page.last() {
            Some(event) => last = Some(event.position),
            None => return last.expect("a log"),
        }
    }
}

async fn status(http: &reqwest::Client, address: &str) -> Value {
    let response = http
        .get(format!("{address}/projections/status"))
        .send()
        .await
        .expect("the status answers");
    assert_eq!(response.status(), 200);
    response.json().await.expect("JSON")
}

#[tokio::test]
async fn the_status_and_metrics_show_the_projectors_running_here_at_the_head() {
    let app = spawn_app().await;
    let head = head(&*app.store).await;
    // `head` is where the log stood as this test could first read it; the projectors end at
    // the log's real head, which is there or beyond (a reader may lag a moment behind commits).
    let (status, head) = eventually(Duration::from_secs(30), "caught up", || async {
        let status = status(&app.http, &app.address).await;
        let positions: Vec<Option<Position>> = projections::READ_MODEL_NAMES
            .iter()
            .map(|name| {
                status["projections"][name]["position"]
                    .as_str()
                    .and_then(|p| p.parse().ok())
            })
            .collect();
        let settled = positions[0]
            .filter(|first| *first >= head && positions.iter().all(|p| *p == Some(*first)));
        let idle = projections::READ_MODEL_NAMES
            .iter()
            .all(|name| status["projections"][name]["lagMs"] == 0);
        match (settled, idle) {
            (Some(at), true) => Ok((status, at)),
            _ => Err(status),
        }
    })
    .await;
    for name in projections::READ_MODEL_NAMES {
        let projection = &status["projections"][name];
        assert_eq!(projection["active"], true, "{status}");
        assert_eq!(projection["lagMs"], 0, "{status}");
    }

    let response = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("the metrics answer");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    for name in projections::READ_MODEL_NAMES {
        for line in [
            format!("userledger_projection_lag_seconds{{projection=\"{name}\"}} 0"),
            format!(
                "userledger_projection_position{{projection=\"{name}\"}} {}",
                head.commit
            ),
            format!("userledger_projection_active{{projection=\"{name}\"}} 1"),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
    assert!(text.contains("# TYPE userledger_projection_lag_seconds gauge"));
}

#[tokio::test]
async fn a_process_without_projectors_reports_the_checkpoints_and_a_growing_lag() {
    let database = TestDatabase::new().await.expect("a test database");
    let store = std::sync::Arc::new(
        event_store::postgres::PostgresEventStore::connect(database.url(), 5)
            .await
            .expect("the store connects"),
    );
    // The read routes alone: no projector runs anywhere yet.
    let app = Application::build_with(
        "127.0.0.1:0".parse().unwrap(),
        store.clone(),
        Some(store.pool().clone()),
        test_settings(),
        query_service::router(query_service::AppState::new(
            store.clone(),
            Some(store.pool().clone()),
            test_settings().subscription_tiers,
        )),
    )
    .await
    .expect("the application builds");
    let address = format!("http://{}", app.local_addr().unwrap());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let http = reqwest::Client::new();
    // Time passing is the point here: with nothing projected, the lag is the age of the oldest
    // unapplied event (bootstrap's), and it grows. (It reads 0 until the log's reader sees that
    // event, which on a loaded machine may take a moment after the commit.)
    eventually(
        Duration::from_secs(10),
        "the lag of every read model grows past 50 ms",
        || async {
            let behind = status(&http, &address).await;
            for name in projections::READ_MODEL_NAMES {
                let projection = &behind["projections"][name];
                assert_eq!(projection["active"], false, "{behind}");
                assert_eq!(projection["position"], Value::Null, "{behind}");
                if projection["lagMs"].as_u64().unwrap() < 50 {
                    return Err(format!("{name}: {behind}"));
                }
            }
            Ok(())
        },
    )
    .await;

    // Projectors in another process (here: another set of tasks): the checkpoints show.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let models = projections::spawn_read_models(store.clone(), database.url(), stopped);
    let head = head(&*store).await;
    for progress in models.progress.values() {
        tokio::time::timeout(
            Duration::from_secs(30),
            progress
                .clone()
                .wait_for(|p| p.position.is_some_and(|at| at >= head)),
        )
        .await
        .expect("caught up in time")
        .unwrap();
    }
    // Each checkpoint, as this process reports it, is where that projector stands (at the
    // log's head, `head` or beyond: a reader may lag a moment behind commits).
    eventually(Duration::from_secs(10), "caught up", || async {
        let caught_up = status(&http, &address).await;
        let settled = projections::READ_MODEL_NAMES.iter().all(|name| {
            let projection = &caught_up["projections"][name];
            let here = models.progress[name]
                .borrow()
                .position
                .map(|p| p.to_string());
            projection["active"] == false
                && projection["lagMs"] == 0
                && here.is_some_and(|here| projection["position"] == Value::String(here))
        });
        holds(settled, caught_up)
    })
    .await;
    stop.send(true).unwrap();
    models.stopped().await;
}
