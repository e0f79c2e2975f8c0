-- The unread badge and each list row's `unread` at a million issues
-- (issue 12). "Unread for staff S" is: some message newer than S's
-- `issue_reads.read_up_to` that S did not write. Asked of `messages` that
-- is a probe per issue; asked of the issue it is one comparison, given
-- three ids kept on the issue row:
--   last_message_id        the newest message;
--   last_message_staff_id  its author when that is a staff member (NULL
--                          for a customer or the system);
--   last_other_message_id  the newest message that staff member did not
--                          write (NULL when last_message_staff_id is NULL).
-- Then the newest message S did not write is last_other_message_id when S
-- wrote the last message, else last_message_id. The trigger below keeps
-- them in the writer's transaction, whoever the writer is.
ALTER TABLE issues ADD COLUMN last_message_id BIGINT;
ALTER TABLE issues ADD COLUMN last_message_staff_id BIGINT;
ALTER TABLE issues ADD COLUMN last_other_message_id BIGINT;

-- One pass over the messages (newest per issue), then the newest message
-- by someone else for the issues a staff member spoke last in.
UPDATE issues i SET
    last_message_id = l.id,
    last_message_staff_id = l.staff_id,
    last_other_message_id = CASE WHEN l.staff_id IS NULL THEN NULL ELSE
        (SELECT MAX(m.id) FROM messages m WHERE m.issue_id = l.issue_id
           AND NOT (m.author_type = 'staff' AND m.author_id = l.staff_id)) END
FROM (SELECT DISTINCT ON (issue_id) issue_id, id,
             CASE WHEN author_type = 'staff' THEN author_id END AS staff_id
      FROM messages ORDER BY issue_id, id DESC) l
WHERE l.issue_id = i.id;

-- A new message is the newest (ids only grow). If the same staff member
-- wrote the one before, the newest message by someone else is unchanged;
-- otherwise it is the one before. A deleted message (a comment, within its
-- author's 5 hours): the three ids are recomputed as the backfill does.
CREATE FUNCTION issues_last_message_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE issues SET
            last_other_message_id = CASE
                WHEN NEW.author_type <> 'staff' THEN NULL
                WHEN last_message_staff_id = NEW.author_id THEN last_other_message_id
                ELSE last_message_id END,
            last_message_id = NEW.id,
            last_message_staff_id = CASE WHEN NEW.author_type = 'staff' THEN NEW.author_id END
        WHERE id = NEW.issue_id;
    ELSE
        UPDATE issues SET
            last_message_id = (SELECT MAX(m.id) FROM messages m WHERE m.issue_id = OLD.issue_id),
            last_message_staff_id = (SELECT CASE WHEN m.author_type = 'staff' THEN m.author_id END
                                     FROM messages m WHERE m.issue_id = OLD.issue_id
                                     ORDER BY m.id DESC LIMIT 1)
        WHERE id = OLD.issue_id;
        UPDATE issues SET last_other_message_id = CASE WHEN last_message_staff_id IS NULL THEN NULL ELSE
            (SELECT MAX(m.id) FROM messages m WHERE m.issue_id = OLD.issue_id
               AND NOT (m.author_type = 'staff' AND m.author_id = issues.last_message_staff_id)) END
        WHERE id = OLD.issue_id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER issues_last_message_track AFTER INSERT OR DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION issues_last_message_track();

-- The badge reads the open issues (about 1% of them) from this index alone.
CREATE INDEX issues_open_unread ON issues
    (status, id, last_message_staff_id, last_message_id, last_other_message_id) WHERE status <> 'closed';

-- `issue_counters` (0010) spread over 8 slots per (status, assignee): each
-- issue always counts in slot `id % 8`, so concurrent writers that open or
-- close different issues rarely wait for the same row lock (every new
-- issue used to update the one (unassigned, 0) row). Readers sum the
-- slots, as they already summed over assignees. A slot may go below zero
-- (an issue counted in slot 0 before this migration and closed after it);
-- the sums stay exact.
ALTER TABLE issue_counters ADD COLUMN slot SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE issue_counters DROP CONSTRAINT issue_counters_pkey;
ALTER TABLE issue_counters ADD PRIMARY KEY (status, assignee_id, slot);
CREATE OR REPLACE FUNCTION issue_counters_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status IS NOT DISTINCT FROM NEW.status
       AND OLD.assignee_id IS NOT DISTINCT FROM NEW.assignee_id THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO issue_counters (status, assignee_id, slot, n)
            VALUES (OLD.status, COALESCE(OLD.assignee_id, 0), OLD.id % 8, -1)
            ON CONFLICT (status, assignee_id, slot) DO UPDATE SET n = issue_counters.n - 1;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO issue_counters (status, assignee_id, slot, n)
            VALUES (NEW.status, COALESCE(NEW.assignee_id, 0), NEW.id % 8, 1)
            ON CONFLICT (status, assignee_id, slot) DO UPDATE SET n = issue_counters.n + 1;
    END IF;
    RETURN NULL;
END
$$;
