-- The email channel: thread headers and mailbox on messages, IMAP cursors,
-- attachments (content-addressed files, metadata here), and delivery state
-- of notification emails.

ALTER TABLE messages ADD COLUMN references_header TEXT;
ALTER TABLE messages ADD COLUMN mailbox TEXT;
ALTER TABLE issues ADD COLUMN mailbox TEXT;

CREATE TABLE mailbox_cursors (
    mailbox     TEXT PRIMARY KEY,
    uidvalidity INTEGER NOT NULL,
    last_uid    INTEGER NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE attachments (
    id           INTEGER PRIMARY KEY,
    message_id   INTEGER NOT NULL REFERENCES messages (id),
    issue_id     INTEGER NOT NULL REFERENCES issues (id),
    filename     TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    sha256       TEXT,
    refused      TEXT,
    created_at   TEXT NOT NULL
);
CREATE INDEX attachments_message ON attachments (message_id);
CREATE INDEX attachments_issue ON attachments (issue_id);

ALTER TABLE notifications ADD COLUMN email_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE notifications ADD COLUMN email_next_at TEXT;
ALTER TABLE notifications ADD COLUMN email_error TEXT;
ALTER TABLE notifications ADD COLUMN email_failed BOOLEAN NOT NULL DEFAULT FALSE;
