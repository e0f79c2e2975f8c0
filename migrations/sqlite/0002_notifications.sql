-- Notifications (SPEC §5): watchers, per-person preference overrides, the
-- in-app feed, and the durable event log behind GET /api/stream (its ids
-- are the SSE `id:` fields, so a reconnect with Last-Event-ID replays from
-- the database, whichever instance the client reaches).

CREATE TABLE watchers (
    issue_id   INTEGER NOT NULL REFERENCES issues (id),
    staff_id   INTEGER NOT NULL REFERENCES staff (id),
    created_at TEXT NOT NULL,
    PRIMARY KEY (issue_id, staff_id)
);

CREATE TABLE notification_prefs (
    staff_id INTEGER NOT NULL REFERENCES staff (id),
    event    TEXT NOT NULL,
    in_app   BOOLEAN NOT NULL,
    email    BOOLEAN NOT NULL,
    PRIMARY KEY (staff_id, event)
);

CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY,
    staff_id   INTEGER NOT NULL REFERENCES staff (id),
    kind       TEXT NOT NULL,
    issue_id   INTEGER REFERENCES issues (id),
    message_id INTEGER,
    text       TEXT NOT NULL,
    in_app     BOOLEAN NOT NULL DEFAULT TRUE,
    -- email wanted by the recipient's preferences; sent by the email
    -- notifier once SMTP is built (emailed_at records when).
    email      BOOLEAN NOT NULL DEFAULT FALSE,
    emailed_at TEXT,
    created_at TEXT NOT NULL,
    read_at    TEXT
);
CREATE INDEX notifications_staff ON notifications (staff_id, id DESC);
CREATE INDEX notifications_email ON notifications (email, emailed_at);

CREATE TABLE stream_events (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('issue', 'message', 'notification')),
    staff_id   INTEGER,
    issue_id   INTEGER,
    ref_id     INTEGER,
    created_at TEXT NOT NULL
);
