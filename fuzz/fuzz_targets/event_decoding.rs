//! Stored events as every reader of the log decodes them: the first byte picks an aggregate,
//! then each record is a byte picking one of its event types, the stored payload and the stored
//! metadata (two JSON values). Each event is opened with the person's key and without it (as
//! after their erasure), decoded through the upcasters of its schema version, and folded into
//! the aggregate (and, with the key, into the user object the API shows). Whatever the bytes,
//! nothing panics: a broken event is an error, never a crash of a projector.

#![no_main]

use std::sync::OnceLock;

use events::application::Application;
use events::metadata::{decode, Decoded, EventFamily};
use events::personal::{self, PersonalKey};
use events::role::Role;
use events::sign_in::SignIns;
use events::social::Social;
use events::store::{Position, RecordedEvent};
use events::user::{User, UserView};
use events::values::UserId;
use events::Aggregate;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use uuid::Uuid;

const PERSON: Uuid = Uuid::from_u128(0x0190_a000_0000_7000_8000_0000_0000_0001);

fn key() -> &'static PersonalKey {
    static KEY: OnceLock<PersonalKey> = OnceLock::new();
    KEY.get_or_init(|| PersonalKey::from_bytes(&[7; 32]).expect("a 32-byte key"))
}

/// The records of `input`: (event type, payload, metadata), until the bytes run out or stop
/// being two JSON values.
fn records<'a>(
    event_types: &'a [&'a str],
    mut input: &'a [u8],
) -> impl Iterator<Item = (&'a str, Value, Value)> + 'a {
    std::iter::from_fn(move || {
        let (&choice, rest) = input.split_first()?;
        let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<Value>();
        let data = values.next()?.ok()?;
        let metadata = values.next()?.ok()?;
        input = &rest[values.byte_offset()..];
        let event_type = event_types[usize::from(choice) % event_types.len()];
        Some((event_type, data, metadata))
    })
}

/// Opens, decodes and folds the records of `input` as events of stream `stream`, twice: as a
/// reader with the person's key sees them (each decoded event also goes to `each`), and as one
/// after their erasure sees them (every personal field `"[erased]"`).
fn replay<A: Aggregate>(stream: &str, input: &[u8], mut each: impl FnMut(&Decoded<A::Event>)) {
    let mut states = [A::State::default(), A::State::default()];
    for (revision, (event_type, data, metadata)) in (0..).zip(records(A::Event::EVENT_TYPES, input))
    {
        let stored = RecordedEvent {
            stream: stream.to_owned(),
            revision,
            position: Position {
                commit: revision,
                prepare: revision,
            },
            event_id: Uuid::nil(),
            event_type: event_type.to_owned(),
            data,
            metadata,
            recorded_at: chrono::DateTime::UNIX_EPOCH,
        };
        for (reader, key) in [Some(key()), None].into_iter().enumerate() {
            let mut event = stored.clone();
            personal::open(key, stream, &mut event.data);
            if let Ok(decoded) = decode::<A::Event>(&event) {
                if key.is_some() {
                    each(&decoded);
                }
                let state = std::mem::take(&mut states[reader]);
                states[reader] = A::evolve(state, &decoded.event);
                let _ = A::unique_values(&states[reader]);
            }
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&aggregate, input)) = input.split_first() else {
        return;
    };
    let person = UserId::from_uuid(PERSON);
    match aggregate % 5 {
        0 => {
            let mut view: Option<UserView> = None;
            replay::<User>(&User::stream_name(person), input, |decoded| {
                view = UserView::evolve(view.take(), &decoded.event, &decoded.metadata);
            });
        }
        1 => replay::<SignIns>(&SignIns::stream_name(&person), input, |_| {}),
        2 => replay::<Role>("role-fuzz", input, |_| {}),
        3 => replay::<Application>(&format!("client-{PERSON}"), input, |_| {}),
        _ => replay::<Social>(&format!("relation-{PERSON}"), input, |_| {}),
    }
});
