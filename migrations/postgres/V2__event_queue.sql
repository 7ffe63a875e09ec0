-- Events are no longer numbered inside the change's transaction. Each write queues its events
-- here, in its own transaction, and a sequencer (src/storage/sequencer.rs) moves them into
-- `events` in batches, giving each its number and hash under the app row's lock. Before, every
-- write held that lock until its commit, so one app's writes could not commit together.
CREATE TABLE pending_events (
    id        BIGINT GENERATED ALWAYS AS IDENTITY,
    app_id    TEXT   NOT NULL,
    kind      TEXT   NOT NULL,
    at_ms     BIGINT NOT NULL,
    card_id   TEXT,
    identity  TEXT,
    actor     TEXT   NOT NULL,
    detail    TEXT   NOT NULL,
    CONSTRAINT pending_events_pkey PRIMARY KEY (id)
);
CREATE INDEX pending_events_by_app ON pending_events (app_id, id);

-- A foreign key to apps makes every insert share-lock the app's row; with the sequencer updating
-- that row, concurrent writers then contend on multixacts. Chains and events are only written
-- for the app of a verified key, and apps are never deleted, so the check bought nothing.
ALTER TABLE chains DROP CONSTRAINT chains_app_id_fkey;
ALTER TABLE events DROP CONSTRAINT events_app_id_fkey;
