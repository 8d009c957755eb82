//! The user object a write answers with (`update`), read from the user's stream with its
//! metadata and hydrated for the time of reading (API.md §3).

use std::sync::Arc;

use chrono::Utc;
use events::metadata::{decode, CommandContext};
use events::store::RecordedEvent;
use events::user::view::UserView;
use events::user::{User, UserEvent};
use events::values::UserId;

use uuid::Uuid;

use crate::pipeline::Outcome;
use crate::AppState;
use http_edge::envelope::ApiError;

/// A write's answer, `{"user": ...}`, written without building a JSON tree of the user.
#[derive(serde::Serialize)]
pub struct UserAnswer<'a> {
    pub user: &'a UserView,
}

/// How many users' objects are kept for answers (the most used ones).
const VIEWS_KEPT: u64 = 10_000;
/// How long an object is kept: a person erased by another process is forgotten here within as
/// long (their key, and so their data, within `event_store::sealed::KEY_CACHE_TTL`).
const VIEWS_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// The user objects that writes answered with, each as of a revision of its stream, so that
/// the next answer decodes only the events after it (a busy user's stream grows by hundreds of
/// events a second). Cheap to clone.
#[derive(Clone)]
pub struct Views(moka::sync::Cache<UserId, Arc<(u64, UserView)>>);

impl Default for Views {
    fn default() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(VIEWS_KEPT)
                .time_to_live(VIEWS_TTL)
                .build(),
        )
    }
}

impl Views {
    /// Forgets the object kept of user `id` (who was erased).
    pub fn forget(&self, id: UserId) {
        self.0.invalidate(&id);
    }
}

/// The user as of the stream revision `up_to` (the write's own last event; everything when
/// `None`), so that the answer shows this write's result and not a later one's. Only the
/// events after the object answered last are read.
pub async fn user_view(
    state: &AppState,
    id: UserId,
    up_to: Option<u64>,
) -> Result<UserView, ApiError> {
    let stream = User::stream_name(id);
    let known = state
        .user_views
        .0
        .get(&id)
        .filter(|known| up_to.is_none_or(|revision| known.0 <= revision));
    let (view, from) = match known {
        Some(known) => (Some(known.1.clone()), known.0 + 1),
        None => (None, 0),
    };
    let mut rest = state.store.read_stream(&stream, from).await?;
    let reached = rest
        .last()
        .map(|last| last.revision)
        .or(from.checked_sub(1));
    if up_to.is_some() && up_to > reached {
        // The cache has not seen this write yet (a read that raced it): the store has.
        rest = state.log.read_stream(&stream, from).await?;
    }
    rest.retain(|event| up_to.is_none_or(|revision| event.revision <= revision));
    let view = fold(view, &rest)?;
    if let (Some(view), Some(last)) = (&view, rest.last()) {
        state
            .user_views
            .0
            .insert(id, Arc::new((last.revision, view.clone())));
    }
    hydrated(state, view)
}

/// The user as the command that `outcome` tells of left them, hydrated for now. When the object
/// answered last is the one just before the command's events, those events are applied to it
/// with the metadata they were stored with (`context`'s): the answer then reads nothing.
/// Otherwise (another write came between, or no object is kept) the stream is read up to the
/// command's last event, as [`user_view`] does.
pub async fn user_after(
    state: &AppState,
    id: UserId,
    outcome: &Outcome<User>,
    context: &CommandContext,
) -> Result<UserView, ApiError> {
    let Some(revision) = outcome.revision else {
        return user_view(state, id, None).await;
    };
    let before = (revision + 1).checked_sub(outcome.events.len() as u64 + 1);
    let known = state
        .user_views
        .0
        .get(&id)
        .filter(|known| Some(known.0) == before);
    let Some(known) = known else {
        return user_view(state, id, Some(revision)).await;
    };
    let metadata = context.metadata(Uuid::nil());
    let view = outcome
        .events
        .iter()
        .try_fold(known.1.clone(), |view, event| {
            UserView::evolve(Some(view), event, &metadata)
        });
    if let Some(view) = &view {
        state
            .user_views
            .0
            .insert(id, Arc::new((revision, view.clone())));
    }
    hydrated(state, view)
}

/// The user that `recorded` (a user's stream, in order) shows, hydrated for now.
pub fn view_of(state: &AppState, recorded: &[RecordedEvent]) -> Result<UserView, ApiError> {
    hydrated(state, fold(None, recorded)?)
}

/// `view` with the events of `recorded` after it applied.
fn fold(
    mut view: Option<UserView>,
    recorded: &[RecordedEvent],
) -> Result<Option<UserView>, ApiError> {
    for event in recorded {
        let decoded = decode::<UserEvent>(event).map_err(ApiError::internal)?;
        view = UserView::evolve(view, &decoded.event, &decoded.metadata);
    }
    Ok(view)
}

fn hydrated(state: &AppState, view: Option<UserView>) -> Result<UserView, ApiError> {
    view.map(|view| view.hydrated(&state.settings.subscription_tiers, Utc::now()))
        .ok_or_else(ApiError::not_found)
}
