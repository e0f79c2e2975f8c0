-- The staff web page (SPEC §9): passwords, server-side sessions, one-time
-- welcome links and the sign-in throttle. Kept in the database, not in
-- process memory, so several instances share them.

-- Argon2id PHC string; NULL until the person chooses a password.
ALTER TABLE staff ADD COLUMN password_hash TEXT;

-- A session is a random id in a cookie; only its SHA-256 is stored.
-- `expires_at` slides forward as the session is used (7 days).
CREATE TABLE web_sessions (
    id_hash      TEXT PRIMARY KEY,
    staff_id     INTEGER NOT NULL REFERENCES staff (id),
    csrf_token   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
CREATE INDEX web_sessions_staff ON web_sessions (staff_id);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);

-- One-time links to choose a password: valid 24 h, single use.
CREATE TABLE welcome_links (
    code_hash  TEXT PRIMARY KEY,
    staff_id   INTEGER NOT NULL REFERENCES staff (id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);

-- Failed sign-ins, one row each, keyed `account:<email>` or
-- `client:<address>`; counted over the last 15 minutes.
CREATE TABLE login_failures (
    id       INTEGER PRIMARY KEY,
    key      TEXT NOT NULL,
    at       TEXT NOT NULL
);
CREATE INDEX login_failures_key ON login_failures (key, at);
