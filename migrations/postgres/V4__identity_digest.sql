-- A digest of each identity's active card ids, kept in the transaction of every change beside
-- the counter: lookup ETags are derived from both, so a tag issued before a restore (which
-- brings counters back to values clients already hold) never matches different content after
-- it. Rows from before this migration are recomputed when the service starts (NULL until then).
ALTER TABLE identity_versions ADD COLUMN digest TEXT;

-- This database's epoch: a random name given when it is created and renewed by every restore
-- (`cardinal restore`, `cardinal epoch --renew`), so that anything derived from the history's
-- continuity (a transparency log's origin) can tell a restored copy from the original.
CREATE TABLE service_epoch (
    singleton   INTEGER NOT NULL,
    epoch       TEXT    NOT NULL,
    renewed_at  BIGINT  NOT NULL,
    CONSTRAINT service_epoch_pkey PRIMARY KEY (singleton),
    CONSTRAINT service_epoch_singleton CHECK (singleton = 1)
);
