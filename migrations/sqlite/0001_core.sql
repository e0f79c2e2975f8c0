-- Core schema: staff and tokens, customers and contacts, issues and their
-- timeline, the outbox and the rejected-inbound log. SQLite flavour; the
-- PostgreSQL file of the same version holds the same tables.
-- Timestamps are RFC 3339 UTC text written by the application, so they sort
-- correctly as text.

CREATE TABLE staff (
    id          INTEGER PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'agent')),
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    staff_id     INTEGER NOT NULL REFERENCES staff (id),
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    last_used_at TEXT
);

CREATE TABLE customers (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    merged_into INTEGER REFERENCES customers (id),
    created_at  TEXT NOT NULL
);

CREATE TABLE contacts (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    kind        TEXT NOT NULL CHECK (kind IN ('phone', 'email')),
    value       TEXT NOT NULL,
    opted_out   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TEXT NOT NULL,
    UNIQUE (kind, value)
);
CREATE INDEX contacts_customer ON contacts (customer_id);

CREATE TABLE issues (
    id                INTEGER PRIMARY KEY,
    customer_id       INTEGER NOT NULL REFERENCES customers (id),
    channel           TEXT NOT NULL CHECK (channel IN ('sms', 'email')),
    subject           TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('unassigned', 'assigned', 'closed')),
    assignee_id       INTEGER REFERENCES staff (id),
    resolution        TEXT CHECK (resolution IN ('closed', 'resolved')),
    previous_issue_id INTEGER REFERENCES issues (id),
    ack_only          BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    last_message_at   TEXT NOT NULL,
    closed_at         TEXT,
    closed_by         INTEGER REFERENCES staff (id),
    CHECK (status <> 'assigned' OR assignee_id IS NOT NULL),
    CHECK (status <> 'unassigned' OR assignee_id IS NULL),
    CHECK ((status = 'closed') = (resolution IS NOT NULL))
);
-- SPEC §3.1: a customer has at most one open issue, enforced here.
CREATE UNIQUE INDEX issues_one_open_per_customer ON issues (customer_id) WHERE status <> 'closed';
CREATE INDEX issues_activity ON issues (last_message_at DESC, id DESC);
CREATE INDEX issues_customer ON issues (customer_id, id);

CREATE TABLE messages (
    id                     INTEGER PRIMARY KEY,
    issue_id               INTEGER NOT NULL REFERENCES issues (id),
    kind                   TEXT NOT NULL CHECK (kind IN ('customer', 'reply', 'comment', 'event')),
    channel                TEXT CHECK (channel IN ('sms', 'email')),
    author_type            TEXT NOT NULL CHECK (author_type IN ('customer', 'staff', 'system')),
    author_id              INTEGER,
    author_name            TEXT NOT NULL,
    body                   TEXT NOT NULL,
    html                   TEXT,
    raw                    BLOB,
    external_id            TEXT,
    threading_rule         TEXT,
    contact_value          TEXT,
    delivery_status        TEXT,
    delivery_error_code    TEXT,
    delivery_error_message TEXT,
    event_type             TEXT,
    event_actor_id         INTEGER REFERENCES staff (id),
    created_at             TEXT NOT NULL,
    edited_at              TEXT
);
-- SPEC §3.1 rule 1: a provider's message id is stored once.
CREATE UNIQUE INDEX messages_external_id ON messages (channel, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX messages_issue ON messages (issue_id, id);

CREATE TABLE issue_reads (
    staff_id   INTEGER NOT NULL REFERENCES staff (id),
    issue_id   INTEGER NOT NULL REFERENCES issues (id),
    read_up_to INTEGER NOT NULL,
    PRIMARY KEY (staff_id, issue_id)
);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,
    message_id      INTEGER REFERENCES messages (id),
    state           TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    locked_until    TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

CREATE TABLE rejected (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('mail', 'webhook')),
    reason      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX rejected_received ON rejected (id DESC);
