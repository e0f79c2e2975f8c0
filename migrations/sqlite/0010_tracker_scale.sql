-- The Issue Tracker at a million issues (issue 12): indexes on what each
-- list query filters and orders by, so a page of the list is read from an
-- index in activity order instead of a scan of every issue. The list's
-- WHERE clause is built per request from the filters given
-- (src/store/list_sql.rs), each one a plain comparison these can serve.

-- status=unassigned|assigned|closed, newest activity first.
CREATE INDEX issues_status_activity ON issues (status, last_message_at DESC, id DESC);
-- assignee=none|<id> with a status (open with an assignee is one status).
CREATE INDEX issues_assignee_activity ON issues (assignee_id, status, last_message_at DESC, id DESC);
-- customer=<id>.
CREATE INDEX issues_customer_activity ON issues (customer_id, last_message_at DESC, id DESC);
-- The default view (open): about 1% of the issues, so a small index.
CREATE INDEX issues_open_activity ON issues (last_message_at DESC, id DESC) WHERE status <> 'closed';

-- Counts per status and assignee (issue 12): the list's `counts` read these
-- few rows instead of counting every closed issue on each request. The
-- triggers keep them in step in the writer's own transaction, whoever the
-- writer is (ingest, staff actions, jobs, merges, a hand-run UPDATE).
-- `assignee_id` is 0 for no assignee, so the key has no NULL in it.
CREATE TABLE issue_counters (
    status      TEXT NOT NULL,
    assignee_id INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (status, assignee_id)
);
INSERT INTO issue_counters (status, assignee_id, n)
    SELECT status, COALESCE(assignee_id, 0), COUNT(*) FROM issues
    GROUP BY status, COALESCE(assignee_id, 0);

CREATE TRIGGER issue_counters_insert AFTER INSERT ON issues
BEGIN
    INSERT INTO issue_counters (status, assignee_id, n)
        VALUES (NEW.status, COALESCE(NEW.assignee_id, 0), 1)
        ON CONFLICT (status, assignee_id) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER issue_counters_update AFTER UPDATE OF status, assignee_id ON issues
WHEN OLD.status IS NOT NEW.status OR OLD.assignee_id IS NOT NEW.assignee_id
BEGIN
    UPDATE issue_counters SET n = n - 1
        WHERE status = OLD.status AND assignee_id = COALESCE(OLD.assignee_id, 0);
    INSERT INTO issue_counters (status, assignee_id, n)
        VALUES (NEW.status, COALESCE(NEW.assignee_id, 0), 1)
        ON CONFLICT (status, assignee_id) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER issue_counters_delete AFTER DELETE ON issues
BEGIN
    UPDATE issue_counters SET n = n - 1
        WHERE status = OLD.status AND assignee_id = COALESCE(OLD.assignee_id, 0);
END;

-- Each issue's last message preview and message count (non-event messages),
-- stored on the issue by the store in the transaction that adds, edits or
-- deletes a message (src/store/sql.rs), so the list reads them from the
-- row instead of two subqueries into `messages` per issue. The backfill
-- stores the whole last body; the store shortens it when it reads it.
ALTER TABLE issues ADD COLUMN last_message_preview TEXT;
ALTER TABLE issues ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;
UPDATE issues SET
    message_count = (SELECT COUNT(*) FROM messages m
                     WHERE m.issue_id = issues.id AND m.kind <> 'event'),
    last_message_preview = (SELECT m.body FROM messages m
                            WHERE m.issue_id = issues.id AND m.kind <> 'event'
                            ORDER BY m.id DESC LIMIT 1);

-- Search (issue 12). Every part of `q` is an index lookup:
-- * a phone number in any formatting: its digits, reversed, are a prefix of
--   the contact's reversed E.164 value (so the last 7+ digits are enough);
--   SQLite has no reverse(), and an E.164 number has at most 15 digits, so
--   the expression reverses characters 16 down to 2 (after the `+`). `kind`
--   leads so that the planner prefers this index to UNIQUE (kind, value)
--   for `kind = 'phone' AND <range>` even without ANALYZE statistics;
CREATE INDEX contacts_phone_reversed ON contacts (
    kind,
    substr(value, 16, 1) || substr(value, 15, 1) || substr(value, 14, 1) ||
    substr(value, 13, 1) || substr(value, 12, 1) || substr(value, 11, 1) ||
    substr(value, 10, 1) || substr(value, 9, 1) || substr(value, 8, 1) ||
    substr(value, 7, 1) || substr(value, 6, 1) || substr(value, 5, 1) ||
    substr(value, 4, 1) || substr(value, 3, 1) || substr(value, 2, 1)
);
-- * an email address or its beginning: a range on the (lowercased) value,
--   served by the UNIQUE (kind, value) index of 0001;
-- * words of the subject, the customer's name and message bodies: FTS5
--   external-content tables (the text stays in its own table; the index is
--   kept in step by triggers in the writer's transaction). Events are not
--   indexed: their text is the system's, not the conversation.
CREATE VIRTUAL TABLE issues_fts USING fts5(
    subject, content = 'issues', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO issues_fts (issues_fts) VALUES ('rebuild');
CREATE TRIGGER issues_fts_insert AFTER INSERT ON issues BEGIN
    INSERT INTO issues_fts (rowid, subject) VALUES (NEW.id, NEW.subject);
END;
CREATE TRIGGER issues_fts_update AFTER UPDATE OF subject ON issues BEGIN
    INSERT INTO issues_fts (issues_fts, rowid, subject) VALUES ('delete', OLD.id, OLD.subject);
    INSERT INTO issues_fts (rowid, subject) VALUES (NEW.id, NEW.subject);
END;
CREATE TRIGGER issues_fts_delete AFTER DELETE ON issues BEGIN
    INSERT INTO issues_fts (issues_fts, rowid, subject) VALUES ('delete', OLD.id, OLD.subject);
END;

CREATE VIRTUAL TABLE customers_fts USING fts5(
    name, content = 'customers', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO customers_fts (customers_fts) VALUES ('rebuild');
CREATE TRIGGER customers_fts_insert AFTER INSERT ON customers BEGIN
    INSERT INTO customers_fts (rowid, name) VALUES (NEW.id, NEW.name);
END;
CREATE TRIGGER customers_fts_update AFTER UPDATE OF name ON customers BEGIN
    INSERT INTO customers_fts (customers_fts, rowid, name) VALUES ('delete', OLD.id, OLD.name);
    INSERT INTO customers_fts (rowid, name) VALUES (NEW.id, NEW.name);
END;
CREATE TRIGGER customers_fts_delete AFTER DELETE ON customers BEGIN
    INSERT INTO customers_fts (customers_fts, rowid, name) VALUES ('delete', OLD.id, OLD.name);
END;

CREATE VIRTUAL TABLE messages_fts USING fts5(
    body, content = 'messages', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages WHERE kind <> 'event';
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN NEW.kind <> 'event' BEGIN
    INSERT INTO messages_fts (rowid, body) VALUES (NEW.id, NEW.body);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages WHEN OLD.kind <> 'event' BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', OLD.id, OLD.body);
    INSERT INTO messages_fts (rowid, body) VALUES (NEW.id, NEW.body);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN OLD.kind <> 'event' BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', OLD.id, OLD.body);
END;

-- Email addresses by their words too (`zoo.example` finds
-- someone@zoo.example): the tokenizer splits at `@` and `.`.
CREATE VIRTUAL TABLE contacts_fts USING fts5(
    value, content = 'contacts', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO contacts_fts (rowid, value) SELECT id, value FROM contacts WHERE kind = 'email';
CREATE TRIGGER contacts_fts_insert AFTER INSERT ON contacts WHEN NEW.kind = 'email' BEGIN
    INSERT INTO contacts_fts (rowid, value) VALUES (NEW.id, NEW.value);
END;
CREATE TRIGGER contacts_fts_update AFTER UPDATE OF value ON contacts WHEN OLD.kind = 'email' BEGIN
    INSERT INTO contacts_fts (contacts_fts, rowid, value) VALUES ('delete', OLD.id, OLD.value);
    INSERT INTO contacts_fts (rowid, value) VALUES (NEW.id, NEW.value);
END;
CREATE TRIGGER contacts_fts_delete AFTER DELETE ON contacts WHEN OLD.kind = 'email' BEGIN
    INSERT INTO contacts_fts (contacts_fts, rowid, value) VALUES ('delete', OLD.id, OLD.value);
END;
