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
