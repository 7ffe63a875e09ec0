-- SQLite dialect of migrations/postgres/V1__directory.sql: same tables, constraints and comments.

-- Apps are tenants: every key, chain, card and event belongs to exactly one.
-- event_seq/event_head are the head of the app's event log. Every write transaction bumps
-- event_seq last, which row-locks the app until commit: that serialisation is what keeps the
-- sequence gap-free and lets each event link to the previous event's hash.
CREATE TABLE apps (
    id                  TEXT   NOT NULL,
    cards_per_identity  TEXT   NOT NULL,
    created_at          INTEGER NOT NULL,
    event_seq           INTEGER NOT NULL DEFAULT 0,
    event_head          BLOB   NOT NULL,
    CONSTRAINT apps_pkey PRIMARY KEY (id),
    CONSTRAINT apps_cards_per_identity CHECK (cards_per_identity IN ('single', 'multiple'))
);

-- Only public keys are stored, as the raw 32 bytes. A revoked key stays, so that the event log
-- and audits can still name it.
CREATE TABLE api_keys (
    kid         TEXT   NOT NULL,
    app_id      TEXT   NOT NULL REFERENCES apps (id),
    role        TEXT   NOT NULL,
    public_key  BLOB   NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    CONSTRAINT api_keys_pkey PRIMARY KEY (kid),
    CONSTRAINT api_keys_role CHECK (role IN ('app', 'admin'))
);

-- A chain is a root card and its rotations. Revocation is a property of the chain, so revoking
-- is one row update and a card can never be active inside a revoked chain. head_card_id is the
-- chain's newest card: a rotation moves it with a compare-and-set, which is what allows at most
-- one successor per card even under concurrent requests.
CREATE TABLE chains (
    app_id             TEXT    NOT NULL REFERENCES apps (id),
    id                 TEXT    NOT NULL,
    identity           TEXT    NOT NULL,
    head_card_id       TEXT    NOT NULL,
    exclusive          INTEGER NOT NULL,
    created_at         INTEGER  NOT NULL,
    revoked_at         INTEGER,
    revocation_reason  TEXT,
    revoked_by         TEXT,
    CONSTRAINT chains_pkey PRIMARY KEY (app_id, id)
);
-- The single-chain policy: an app that allows one chain per identity creates its chains as
-- exclusive, and this index refuses a second live one, whichever request commits first.
CREATE UNIQUE INDEX chains_single_active ON chains (app_id, identity) WHERE exclusive AND revoked_at IS NULL;

-- raw is the countersigned RawSignedModel JSON as served, written once at publish and never
-- re-encoded; content_snapshot inside it is the base64 exactly as the client sent it.
CREATE TABLE cards (
    app_id            TEXT   NOT NULL,
    id                TEXT   NOT NULL,
    identity          TEXT   NOT NULL,
    chain_id          TEXT   NOT NULL,
    previous_card_id  TEXT,
    superseded_by     TEXT,
    created_at        INTEGER NOT NULL,
    published_at      INTEGER NOT NULL,
    public_key        TEXT   NOT NULL,
    raw               TEXT   NOT NULL,
    CONSTRAINT cards_pkey PRIMARY KEY (app_id, id),
    CONSTRAINT cards_chain FOREIGN KEY (app_id, chain_id) REFERENCES chains (app_id, id)
);
CREATE UNIQUE INDEX cards_one_successor ON cards (app_id, previous_card_id) WHERE previous_card_id IS NOT NULL;
CREATE INDEX cards_current_by_identity ON cards (app_id, identity) WHERE superseded_by IS NULL;

-- One counter per (app, identity), bumped in the transaction of every change to that identity's
-- cards. Lookup ETags are derived from these, so a revalidation never reads card bodies.
CREATE TABLE identity_versions (
    app_id    TEXT   NOT NULL,
    identity  TEXT   NOT NULL,
    version   INTEGER NOT NULL,
    CONSTRAINT identity_versions_pkey PRIMARY KEY (app_id, identity)
);

-- Append-only. body is the event's canonical JSON; hash = SHA-256(prev_hash || body).
CREATE TABLE events (
    app_id     TEXT   NOT NULL REFERENCES apps (id),
    seq        INTEGER NOT NULL,
    kind       TEXT   NOT NULL,
    card_id    TEXT,
    body       TEXT   NOT NULL,
    prev_hash  BLOB   NOT NULL,
    hash       BLOB   NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (app_id, seq)
);
