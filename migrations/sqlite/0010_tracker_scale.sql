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
