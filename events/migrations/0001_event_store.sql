-- The PostgreSQL event store: one global log of every stream's events, and the uniqueness
-- claims that appends make atomically with their events.

CREATE TABLE events (
    -- Global position: derived from the writing transaction's id (see append_to_stream).
    position     bigint      PRIMARY KEY,
    stream_id    text        NOT NULL,
    revision     bigint      NOT NULL CHECK (revision >= 0),
    -- The writing transaction: readers expose only events of transactions older than the
    -- oldest one still running.
    tx           xid8        NOT NULL,
    event_id     uuid        NOT NULL,
    event_type   text        NOT NULL,
    data         jsonb       NOT NULL,
    metadata     jsonb       NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT events_stream_revision_key UNIQUE (stream_id, revision)
);

CREATE TABLE unique_claims (
    kind        text        NOT NULL,
    value       text        NOT NULL,
    stream_id   text        NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (kind, value)
);

-- Appends events to one stream at an expected revision, with uniqueness claims and releases,
-- in the caller's transaction (a statement of its own: autocommit).
--
-- Gap-free reading: a transaction may commit after another that wrote later, so readers expose
-- only events whose transaction id is below the oldest running transaction
-- (pg_snapshot_xmin). That is correct only if position order equals transaction-id order, so
-- the position *is* derived from the transaction id: (xid << 16) + the event's index within
-- its transaction. Every event a reader may still have to wait for then lies above every event
-- it has been shown, with no lock and no sequence shared by writers.
--
-- Errors: UL001 wrong expected revision (DETAIL = actual revision or 'none'),
--         UL002 claim taken (DETAIL = kind, HINT = value),
--         UL003 more than 65,536 events in one transaction.
CREATE FUNCTION append_to_stream(
    p_stream          text,
    p_expected_kind   text,     -- 'any' | 'no_stream' | 'exact'
    p_expected        bigint,
    p_event_ids       uuid[],
    p_types           text[],
    p_data            jsonb[],
    p_metadata        jsonb[],
    p_claim_kinds     text[],
    p_claim_values    text[],
    p_release_kinds   text[],
    p_release_values  text[]
) RETURNS TABLE (revision bigint, first_position bigint, last_position bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_count     int := coalesce(cardinality(p_event_ids), 0);
    v_tx        xid8;
    v_written   int;
    v_base      bigint;
    v_current   bigint;
    v_inserted  int;
    v_owner     text;
BEGIN
    IF v_count = 0 THEN
        RAISE EXCEPTION 'an append needs at least one event' USING ERRCODE = '22023';
    END IF;
    v_tx := pg_current_xact_id();
    -- Events this transaction already appended (a transaction may append several times).
    v_written := coalesce(nullif(current_setting('userledger.events_in_transaction', true), ''), '0')::int;
    IF v_written + v_count > 65536 THEN
        RAISE EXCEPTION 'at most 65,536 events can be appended in one transaction'
            USING ERRCODE = 'UL003';
    END IF;
    PERFORM set_config('userledger.events_in_transaction', (v_written + v_count)::text, true);
    v_base := (v_tx::text::bigint << 16) + v_written;

    SELECT max(e.revision) INTO v_current FROM events e WHERE e.stream_id = p_stream;
    IF (p_expected_kind = 'no_stream' AND v_current IS NOT NULL)
       OR (p_expected_kind = 'exact' AND v_current IS DISTINCT FROM p_expected) THEN
        RAISE EXCEPTION 'stream % is not at the expected revision', p_stream
            USING ERRCODE = 'UL001', DETAIL = coalesce(v_current::text, 'none');
    END IF;

    IF coalesce(cardinality(p_release_kinds), 0) > 0 THEN
        DELETE FROM unique_claims c
         USING unnest(p_release_kinds, p_release_values) AS r(kind, value)
         WHERE c.kind = r.kind AND c.value = lower(r.value) AND c.stream_id = p_stream;
    END IF;

    FOR i IN 1 .. coalesce(cardinality(p_claim_kinds), 0) LOOP
        INSERT INTO unique_claims (kind, value, stream_id)
        VALUES (p_claim_kinds[i], lower(p_claim_values[i]), p_stream)
        ON CONFLICT (kind, value) DO NOTHING;
        IF NOT FOUND THEN
            SELECT c.stream_id INTO v_owner FROM unique_claims c
             WHERE c.kind = p_claim_kinds[i] AND c.value = lower(p_claim_values[i]);
            IF v_owner IS DISTINCT FROM p_stream THEN
                RAISE EXCEPTION '% % is already taken', p_claim_kinds[i], p_claim_values[i]
                    USING ERRCODE = 'UL002', DETAIL = p_claim_kinds[i], HINT = lower(p_claim_values[i]);
            END IF;
        END IF;
    END LOOP;

    INSERT INTO events (position, stream_id, revision, tx, event_id, event_type, data, metadata)
    SELECT v_base + i - 1, p_stream, coalesce(v_current, -1) + i, v_tx,
           p_event_ids[i], p_types[i], p_data[i], p_metadata[i]
      FROM generate_series(1, v_count) AS i
    ON CONFLICT ON CONSTRAINT events_stream_revision_key DO NOTHING;
    GET DIAGNOSTICS v_inserted = ROW_COUNT;
    IF v_inserted < v_count THEN
        -- Another writer committed this revision between our read and our insert.
        SELECT max(e.revision) INTO v_current FROM events e WHERE e.stream_id = p_stream;
        RAISE EXCEPTION 'stream % is not at the expected revision', p_stream
            USING ERRCODE = 'UL001', DETAIL = coalesce(v_current::text, 'none');
    END IF;

    RETURN QUERY SELECT coalesce(v_current, -1) + v_count, v_base, v_base + v_count - 1;
END;
$$;
