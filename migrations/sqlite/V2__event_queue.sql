-- Events are no longer numbered inside the change's transaction. Each write queues its events
-- here and a sequencer (src/storage/sequencer.rs) moves them into `events` in batches, giving
-- each its number and hash. AUTOINCREMENT: ids only grow, so the queue's order is commit order.
CREATE TABLE pending_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id    TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    at_ms     INTEGER NOT NULL,
    card_id   TEXT,
    identity  TEXT,
    actor     TEXT    NOT NULL,
    detail    TEXT    NOT NULL
);
CREATE INDEX pending_events_by_app ON pending_events (app_id, id);
