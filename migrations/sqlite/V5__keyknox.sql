-- SQLite dialect of migrations/postgres/V5__keyknox.sql: same tables, constraints and comments.

-- Keyknox: ciphertext that clients encrypted themselves (private-key backups, e3kit group
-- tickets). Cardinal never sees a plaintext key; meta and value are stored as received.
-- hash is the content hash the clients send back as Virgil-Keyknox-Previous-Hash: every write
-- compares it under the row's lock, which is what makes exactly one of two racing writes win.

-- v1: one entry per (app, identity). A reset keeps the row, emptied, so that its version goes on
-- counting (the clients show it).
CREATE TABLE keyknox_v1 (
    app_id      TEXT    NOT NULL REFERENCES apps (id),
    identity    TEXT    NOT NULL,
    meta        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    hash        TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    CONSTRAINT keyknox_v1_pkey PRIMARY KEY (app_id, identity)
);

-- v2: one row per owner and entry counter, locked by every write that adds or removes an
-- entry of the owner, so the entries-per-identity limit holds under concurrent pushes.
CREATE TABLE keyknox_owners (
    app_id   TEXT    NOT NULL REFERENCES apps (id),
    owner    TEXT    NOT NULL,
    entries  INTEGER NOT NULL,
    CONSTRAINT keyknox_owners_pkey PRIMARY KEY (app_id, owner)
);

CREATE TABLE keyknox_entries (
    app_id      TEXT    NOT NULL REFERENCES apps (id),
    owner       TEXT    NOT NULL,
    root        TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    meta        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    hash        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    CONSTRAINT keyknox_entries_pkey PRIMARY KEY (app_id, owner, root, path, key)
);

-- Who may read an entry; the owner is always one of them, so access is one lookup here.
CREATE TABLE keyknox_readers (
    app_id  TEXT  NOT NULL,
    owner   TEXT  NOT NULL,
    root    TEXT  NOT NULL,
    path    TEXT  NOT NULL,
    key     TEXT  NOT NULL,
    reader  TEXT  NOT NULL,
    CONSTRAINT keyknox_readers_pkey PRIMARY KEY (app_id, owner, root, path, key, reader),
    CONSTRAINT keyknox_readers_entry FOREIGN KEY (app_id, owner, root, path, key)
        REFERENCES keyknox_entries (app_id, owner, root, path, key) ON DELETE CASCADE
);
-- An admin erasing a departed user removes their grants on other owners' entries.
CREATE INDEX keyknox_readers_by_reader ON keyknox_readers (app_id, reader);
