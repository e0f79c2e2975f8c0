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
-- wrote the last message, else last_message_id. The triggers below keep
-- them in the writer's transaction, whoever the writer is.
ALTER TABLE issues ADD COLUMN last_message_id INTEGER;
ALTER TABLE issues ADD COLUMN last_message_staff_id INTEGER;
ALTER TABLE issues ADD COLUMN last_other_message_id INTEGER;

UPDATE issues SET
    last_message_id = (SELECT MAX(m.id) FROM messages m WHERE m.issue_id = issues.id),
    last_message_staff_id = (SELECT CASE WHEN m.author_type = 'staff' THEN m.author_id END
                             FROM messages m WHERE m.issue_id = issues.id
                             ORDER BY m.id DESC LIMIT 1);
UPDATE issues SET last_other_message_id =
    (SELECT MAX(m.id) FROM messages m WHERE m.issue_id = issues.id
       AND NOT (m.author_type = 'staff' AND m.author_id = issues.last_message_staff_id))
WHERE last_message_staff_id IS NOT NULL;

-- A new message is the newest (ids only grow). If the same staff member
-- wrote the one before, the newest message by someone else is unchanged;
-- otherwise it is the one before.
CREATE TRIGGER issues_last_message_insert AFTER INSERT ON messages BEGIN
    UPDATE issues SET
        last_other_message_id = CASE
            WHEN NEW.author_type <> 'staff' THEN NULL
            WHEN last_message_staff_id = NEW.author_id THEN last_other_message_id
            ELSE last_message_id END,
        last_message_id = NEW.id,
        last_message_staff_id = CASE WHEN NEW.author_type = 'staff' THEN NEW.author_id END
    WHERE id = NEW.issue_id;
END;

-- A deleted message (a comment, within its author's 5 hours): recompute
-- the issue's three ids from its messages, as the backfill does.
CREATE TRIGGER issues_last_message_delete AFTER DELETE ON messages BEGIN
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
END;

-- The badge reads the open issues (about 1% of them) from this index alone.
CREATE INDEX issues_open_unread ON issues
    (status, id, last_message_staff_id, last_message_id, last_other_message_id) WHERE status <> 'closed';
