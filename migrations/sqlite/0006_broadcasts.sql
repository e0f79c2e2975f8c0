-- Broadcasts: one announcement to many customers, each over their own
-- channel; one row per recipient with its outcome.

CREATE TABLE broadcasts (
    id         INTEGER PRIMARY KEY,
    body       TEXT NOT NULL,
    subject    TEXT,
    created_by INTEGER NOT NULL REFERENCES staff (id),
    created_at TEXT NOT NULL
);

CREATE TABLE broadcast_recipients (
    id           INTEGER PRIMARY KEY,
    broadcast_id INTEGER NOT NULL REFERENCES broadcasts (id),
    customer_id  INTEGER NOT NULL REFERENCES customers (id),
    channel      TEXT,
    contact      TEXT,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'failed', 'skipped')),
    error        TEXT,
    external_id  TEXT,
    updated_at   TEXT NOT NULL
);
CREATE INDEX broadcast_recipients_broadcast ON broadcast_recipients (broadcast_id, id);
