//! The user object a write answers with (`update`), read from the user's stream with its
//! metadata and hydrated for the time of reading (API.md §3).

use chrono::Utc;
use events::metadata::decode;
use events::store::RecordedEvent;
use events::user::view::UserView;
use events::user::{User, UserEvent};
use events::values::UserId;

use crate::AppState;
use http_edge::envelope::ApiError;

/// The user as of the stream revision `up_to` (the write's own last event; everything when
/// `None`), so that the answer shows this write's result and not a later one's.
pub async fn user_view(
    state: &AppState,
    id: UserId,
    up_to: Option<u64>,
) -> Result<UserView, ApiError> {
    let recorded = state
        .store
        .read_stream_shared(&User::stream_name(id))
        .await?;
    let until = recorded
        .iter()
        .take_while(|event| up_to.is_none_or(|revision| event.revision <= revision))
        .count();
    view_of(state, &recorded[..until])
}

/// The user that `recorded` (a user's stream, in order) shows, hydrated for now.
pub fn view_of(state: &AppState, recorded: &[RecordedEvent]) -> Result<UserView, ApiError> {
    let mut view = None;
    for event in recorded {
        let decoded = decode::<UserEvent>(event).map_err(ApiError::internal)?;
        view = UserView::evolve(view, &decoded.event, &decoded.metadata);
    }
    view.map(|view| view.hydrated(&state.settings.subscription_tiers, Utc::now()))
        .ok_or_else(ApiError::not_found)
}
