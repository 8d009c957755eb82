-- The PostgreSQL event store: one global log of every stream's events, and the uniqueness
-- claims that appends make atomically with their events. The statements that write them live
-- in events/src/store/postgres.rs.

CREATE TABLE events (
    -- Global position: (writing transaction id << 16) + the event's index in its transaction.
    -- Readers expose only events of transactions below the oldest running one
    -- (pg_snapshot_xmin); since positions follow transaction ids, every event a reader may
    -- still have to wait for lies above every event it has been shown.
    position     bigint      PRIMARY KEY,
    stream_id    text        NOT NULL,
    revision     bigint      NOT NULL CHECK (revision >= 0),
    tx           xid8        NOT NULL,
    event_id     uuid        NOT NULL,
    event_type   text        NOT NULL,
    data         jsonb       NOT NULL,
    metadata     jsonb       NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Optimistic concurrency: of two writers appending the same revision, one fails here.
    CONSTRAINT events_stream_revision_key UNIQUE (stream_id, revision)
);

CREATE TABLE unique_claims (
    kind        text        NOT NULL,
    value       text        NOT NULL,   -- lowercased by the writer
    stream_id   text        NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (kind, value)
);
