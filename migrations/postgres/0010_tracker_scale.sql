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
-- trigger keeps them in step in the writer's own transaction, whoever the
-- writer is (ingest, staff actions, jobs, merges, a hand-run UPDATE).
-- `assignee_id` is 0 for no assignee, so the key has no NULL in it.
CREATE TABLE issue_counters (
    status      TEXT NOT NULL,
    assignee_id BIGINT NOT NULL,
    n           BIGINT NOT NULL,
    PRIMARY KEY (status, assignee_id)
);
INSERT INTO issue_counters (status, assignee_id, n)
    SELECT status, COALESCE(assignee_id, 0), COUNT(*) FROM issues
    GROUP BY status, COALESCE(assignee_id, 0);

CREATE FUNCTION issue_counters_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status IS NOT DISTINCT FROM NEW.status
       AND OLD.assignee_id IS NOT DISTINCT FROM NEW.assignee_id THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE issue_counters SET n = n - 1
            WHERE status = OLD.status AND assignee_id = COALESCE(OLD.assignee_id, 0);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO issue_counters (status, assignee_id, n)
            VALUES (NEW.status, COALESCE(NEW.assignee_id, 0), 1)
            ON CONFLICT (status, assignee_id) DO UPDATE SET n = issue_counters.n + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER issue_counters_track AFTER INSERT OR DELETE OR UPDATE OF status, assignee_id
    ON issues FOR EACH ROW EXECUTE FUNCTION issue_counters_track();

-- Each issue's last message preview and message count (non-event messages),
-- stored on the issue by the store in the transaction that adds, edits or
-- deletes a message (src/store/sql.rs), so the list reads them from the
-- row instead of two subqueries into `messages` per issue. The backfill
-- stores the whole last body; the store shortens it when it reads it.
ALTER TABLE issues ADD COLUMN last_message_preview TEXT;
ALTER TABLE issues ADD COLUMN message_count BIGINT NOT NULL DEFAULT 0;
UPDATE issues SET
    message_count = (SELECT COUNT(*) FROM messages m
                     WHERE m.issue_id = issues.id AND m.kind <> 'event'),
    last_message_preview = (SELECT m.body FROM messages m
                            WHERE m.issue_id = issues.id AND m.kind <> 'event'
                            ORDER BY m.id DESC LIMIT 1);

-- Search (issue 12). Every part of `q` is an index lookup:
-- * a phone number in any formatting: its digits, reversed, are a prefix of
--   the contact's reversed E.164 value (so the last 7+ digits are enough);
--   byte order ("C") so that a range is a prefix;
CREATE INDEX contacts_phone_reversed ON contacts ((reverse(value)) COLLATE "C")
    WHERE kind = 'phone';
-- * an email address or its beginning: a byte-order range on the
--   (lowercased) value;
CREATE INDEX contacts_email_prefix ON contacts (value COLLATE "C") WHERE kind = 'email';
-- * words of the subject, the customer's name and message bodies:
--   expression GIN indexes on tsvectors ('simple': no stemming, as on
--   SQLite). An expression index needs no trigger: PostgreSQL keeps it in
--   step in the writer's transaction. Events are not indexed: their text is
--   the system's, not the conversation.
CREATE INDEX issues_subject_fts ON issues USING gin (to_tsvector('simple', subject));
CREATE INDEX customers_name_fts ON customers USING gin (to_tsvector('simple', name));
CREATE INDEX messages_body_fts ON messages USING gin (to_tsvector('simple', body))
    WHERE kind <> 'event';
-- Email addresses by their words too (`zoo.example` finds
-- someone@zoo.example); PostgreSQL's parser would keep an address as one
-- token, so `@` and `.` become spaces first.
CREATE INDEX contacts_email_words ON contacts
    USING gin (to_tsvector('simple', translate(value, '@.', '  '))) WHERE kind = 'email';
