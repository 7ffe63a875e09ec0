-- The transparency log (docs/TRANSPARENCY.md). Each app's RFC 6962 tree over its events' bodies
-- is kept as stored hashes (every complete subtree's hash once, at the dense index of Go's
-- sumdb/tlog), written by the sequencing round that writes the events, so the tree can never
-- disagree with them. `tlog_size` is how many events the tree covers: event_seq, once the
-- service has started on this schema (it hashes the events from before then).
ALTER TABLE apps ADD COLUMN tlog_size INTEGER NOT NULL DEFAULT 0;

CREATE TABLE tlog_hashes (
    app_id  TEXT   NOT NULL REFERENCES apps (id),
    idx     INTEGER NOT NULL,
    hash    BLOB   NOT NULL,
    CONSTRAINT tlog_hashes_pkey PRIMARY KEY (app_id, idx)
);

-- Signed checkpoints, one per size of an origin: a size is never signed with two roots (the
-- key refuses the second insert; the signer compares what is stored). `epoch` is the database's
-- epoch when it was signed: a checkpoint of another epoch means a restore, which a log cannot
-- continue.
CREATE TABLE checkpoints (
    app_id     TEXT   NOT NULL REFERENCES apps (id),
    origin     TEXT   NOT NULL,
    size       INTEGER NOT NULL,
    root       BLOB   NOT NULL,
    note       TEXT   NOT NULL,
    epoch      TEXT   NOT NULL,
    signed_at  INTEGER NOT NULL,
    CONSTRAINT checkpoints_pkey PRIMARY KEY (app_id, origin, size)
);

-- A proofs=true lookup names each card's card_published entry.
CREATE INDEX events_published_card ON events (app_id, card_id) WHERE kind = 'card_published';

-- Witnesses' cosignatures of checkpoints (C2SP tlog-cosignature lines), served with them.
CREATE TABLE cosignatures (
    app_id     TEXT   NOT NULL REFERENCES apps (id),
    origin     TEXT   NOT NULL,
    size       INTEGER NOT NULL,
    witness    TEXT   NOT NULL,
    line       TEXT   NOT NULL,
    CONSTRAINT cosignatures_pkey PRIMARY KEY (app_id, origin, size, witness)
);
