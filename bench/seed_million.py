#!/usr/bin/env python3
"""Seeds a Switchboard database with a support desk's history, for
bench/tracker_queries.py (issue 12; bench/TRACKER.md says how to run both).

    switchboard --config sb.toml migrate          # the schema first
    python3 bench/seed_million.py sqlite:///tmp/sb.db 1000000
    python3 bench/seed_million.py postgres://postgres@127.0.0.1/bench 1000000

Rows go straight into the tables of migrations 0001-0008 (the generated
SQL runs inside the database: a recursive CTE on SQLite, generate_series on
PostgreSQL), so the same seed works on a database that a release before
issue 12 migrated and on one that `migrate` takes to 0010 afterwards, which
is how TRACKER.md compares the two on the same rows. Whatever 0010 keeps
(counters, previews, full-text indexes) is filled by its triggers, indexes
or backfill, exactly as for a real desk that upgrades.

The mix, for N issues:
- 20 staff; staff 1 is an admin with the API token `bench-token`.
- 0.6 N customers named from 50 first and 50 last names; every one has a
  phone (+1 555 XXX XXXX), one in ten a second phone, four in ten an email.
- N issues, a third by email; the newest 1% are open (half unassigned,
  half assigned), the rest closed; subjects from 40 templates.
- K messages per issue (default 10): customer messages and replies whose
  bodies draw three words from a 200-word vocabulary plus a reference
  `refNNNNN` shared by about K*N/100003 messages; every fifth is an event.

SQLite needs only the standard library; PostgreSQL is fed through `psql`.
"""
import hashlib
import os
import subprocess
import sys
import time

TOKEN = "bench-token"
STAFF = 20
FIRST = ("Alice Bob Carol Dave Erin Frank Grace Heidi Ivan Judy Karl Laura Mallory Nina Oscar "
         "Peggy Quentin Rupert Sybil Trent Ursula Victor Walter Xena Yusuf Zoe Amir Bianca Chen "
         "Dmitri Elena Farah Goran Hana Igor Jamal Keiko Lars Maya Nikos Olga Pavel Rosa Sanjay "
         "Tamar Uma Vera Wei Yara Zane").split()
LAST = ("Smith Jones Brown Taylor Wilson Davies Evans Thomas Johnson Roberts Walker Wright "
        "Robinson Thompson White Hughes Edwards Green Hall Wood Harris Lewis Martin Jackson "
        "Clarke Clark Turner Hill Scott Cooper Morris Ward Moore King Watson Baker Harrison "
        "Morgan Patel Young Allen Mitchell James Anderson Phillips Lee Bell Parker Davis Zebrowski").split()
SUBJECTS = [
    "Refund for my order", "Printer not working", "Parcel never arrived", "Wrong size delivered",
    "Cannot log in", "Password reset link expired", "Invoice is wrong", "Charged twice",
    "Cancel my subscription", "Change delivery address", "Damaged item", "Missing part",
    "Warranty claim", "Where is my order", "Discount code rejected", "App crashes on start",
    "Update payment card", "Return label request", "Late delivery", "Question about pricing",
    "Account locked", "Gift card balance", "Order confirmation missing", "Item out of stock",
    "Exchange request", "Battery drains fast", "Screen flickers", "Noise from the unit",
    "Installation help", "Manual missing", "Bulk order enquiry", "Tax receipt needed",
    "Loyalty points missing", "Newsletter unsubscribe", "Store opening hours", "Complaint about courier",
    "Feedback on service", "Upgrade my plan", "Data export request", "Close my account",
]
WORDS = ("account address app arrived balance bank battery billing box broken cable call card "
         "cart charge charger cheque colour courier coupon credit customer damaged date deadline "
         "delay delivery deposit device discount dispatch display door download driver email "
         "error exchange expired export fault fee file firmware form fraud gift guarantee handle "
         "help hinge hold install invoice item key keyboard label laptop late leak lid light link "
         "locker login loyalty manual meter missing mobile modem monitor motor mouse network "
         "notice number offer order outage package pad page paid pairing parcel part password "
         "payment phone photo pin plan plug points policy port postage power price printer "
         "product profile promo purchase quote receipt record refund register reminder renewal "
         "repair replacement report return router rules scanner schedule screen seal sensor "
         "serial service settings shipment shipping signal size sms socket speaker speed stock "
         "store strap subscription supplier support switch tablet tax term ticket timer toner "
         "tracking transfer tray trial unit update upgrade usb user valve van voucher wallet "
         "warranty washer watch weight wifi window wire wrapper yard zip zone adapter antenna "
         "blender camera dryer filter fridge grill heater kettle lamp mixer oven bulb clock "
         "drill fan freezer hub iron jack lens mic pump radio razor remote scale stove vacuum").split()[:200]
assert len(WORDS) == 200

# What differs between the backends' SQL: counting rows into being, a
# timestamp as the store writes it, zero-padding, booleans.
DIALECTS = {
    "sqlite": {
        "upto": "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {}) ",
        "ts": "strftime('%Y-%m-%dT%H:%M:%S+00:00', {s}, 'unixepoch')",
        "pad7": "printf('%07d', {e})",
        "true": "1",
        "false": "0",
    },
    "postgres": {
        "upto": "WITH n(x) AS (SELECT generate_series(1, {})) ",
        "ts": "to_timestamp({s})",
        "pad7": "lpad(({e})::text, 7, '0')",
        "true": "TRUE",
        "false": "FALSE",
    },
}


def sql_script(backend, n, per_issue):
    """The seeding SQL for `backend` ('sqlite' or 'postgres')."""
    customers = max(1, n * 6 // 10)
    open_from = n - n // 100  # issues after this one are open
    now = int(time.time())
    base = now - n * 60 - 3600  # issue x was last active at base + 60 x
    d = DIALECTS[backend]
    upto = d["upto"].format
    ts = lambda seconds: d["ts"].format(s=seconds)  # noqa: E731
    pad7 = lambda expr: d["pad7"].format(e=expr)  # noqa: E731
    temp, true, false = "TEMP", d["true"], d["false"]

    def values(rows):
        return ", ".join("(%d, '%s')" % (i, v.replace("'", "''")) for i, v in enumerate(rows))

    token_hash = hashlib.sha256(TOKEN.encode()).hexdigest()
    pick = lambda table, expr: f"(SELECT v FROM {table} WHERE i = {expr})"  # noqa: E731
    cust = "((x - 1) % {c}) + 1".format(c=customers)
    issue_at = f"{base} + x * 60"
    k = f"((x - 1) % {per_issue})"  # a message's place in its issue
    issue_of = f"((x - 1) / {per_issue} + 1)"
    return f"""
CREATE {temp} TABLE first_names (i INTEGER PRIMARY KEY, v TEXT);
INSERT INTO first_names VALUES {values(FIRST)};
CREATE {temp} TABLE last_names (i INTEGER PRIMARY KEY, v TEXT);
INSERT INTO last_names VALUES {values(LAST)};
CREATE {temp} TABLE subjects (i INTEGER PRIMARY KEY, v TEXT);
INSERT INTO subjects VALUES {values(SUBJECTS)};
CREATE {temp} TABLE words (i INTEGER PRIMARY KEY, v TEXT);
INSERT INTO words VALUES {values(WORDS)};

{upto(STAFF)} INSERT INTO staff (id, email, name, role, active, created_at)
SELECT x, 'agent' || x || '@bench.test', 'Agent ' || x,
       CASE WHEN x = 1 THEN 'admin' ELSE 'agent' END, {true}, {ts(base)} FROM n;
INSERT INTO api_tokens (staff_id, token_hash, created_at) VALUES (1, '{token_hash}', {ts(base)});

{upto(customers)} INSERT INTO customers (id, name, created_at)
SELECT x, {pick('first_names', 'x % 50')} || ' ' || {pick('last_names', '(x / 50) % 50')},
       {ts(base)} FROM n;

{upto(customers)} INSERT INTO contacts (customer_id, kind, value, opted_out, created_at)
SELECT x, 'phone', '+1555' || {pad7('x')}, {false}, {ts(base)} FROM n;
{upto(customers)} INSERT INTO contacts (customer_id, kind, value, opted_out, created_at)
SELECT x, 'phone', '+1666' || {pad7('x')}, {false}, {ts(base)} FROM n
WHERE x % 10 = 0;
{upto(customers)} INSERT INTO contacts (customer_id, kind, value, opted_out, created_at)
SELECT x, 'email', lower({pick('first_names', 'x % 50')}) || '.' || lower({pick('last_names', '(x / 50) % 50')})
                  || x || '@example.com', {false}, {ts(base)} FROM n
WHERE x % 5 < 2;

{upto(n)} INSERT INTO issues (id, customer_id, channel, subject, status, assignee_id, resolution,
                              ack_only, created_at, updated_at, last_message_at, closed_at, closed_by)
SELECT x, {cust}, CASE WHEN x % 3 = 0 THEN 'email' ELSE 'sms' END,
       {pick('subjects', 'x % 40')},
       CASE WHEN x <= {open_from} THEN 'closed' WHEN x % 2 = 0 THEN 'unassigned' ELSE 'assigned' END,
       CASE WHEN x > {open_from} AND x % 2 = 0 THEN NULL
            WHEN x <= {open_from} AND x % 10 = 0 THEN NULL ELSE x % {STAFF} + 1 END,
       CASE WHEN x > {open_from} THEN NULL WHEN x % 2 = 0 THEN 'resolved' ELSE 'closed' END,
       {false},
       {ts(issue_at + ' - 3600')}, {ts(issue_at)}, {ts(issue_at)},
       CASE WHEN x <= {open_from} THEN {ts(issue_at)} END,
       CASE WHEN x <= {open_from} AND x % 10 <> 0 THEN x % {STAFF} + 1 END
FROM n;

{upto(n * per_issue)} INSERT INTO messages (issue_id, kind, channel, author_type, author_id, author_name,
                                       body, created_at, delivery_status, event_type)
SELECT {issue_of},
       CASE WHEN {k} % 5 = 4 THEN 'event' WHEN {k} % 2 = 0 THEN 'customer' ELSE 'reply' END,
       CASE WHEN {k} % 5 = 4 THEN NULL WHEN {issue_of} % 3 = 0 THEN 'email' ELSE 'sms' END,
       CASE WHEN {k} % 5 = 4 THEN 'system' WHEN {k} % 2 = 0 THEN 'customer' ELSE 'staff' END,
       CASE WHEN {k} % 5 = 4 THEN NULL WHEN {k} % 2 = 0 THEN ({issue_of} - 1) % {customers} + 1 ELSE {issue_of} % {STAFF} + 1 END,
       CASE WHEN {k} % 5 = 4 THEN 'System' WHEN {k} % 2 = 0 THEN 'Customer' ELSE 'Agent' END,
       CASE WHEN {k} % 5 = 4 THEN 'Escalated after 4 hours without reply'
            ELSE 'Hello, my ' || {pick('words', '(x * 7) % 200')} || ' and the '
                 || {pick('words', '(x * 13) % 200')} || ' need help with '
                 || {pick('words', '(x * 31) % 200')} || ', see ref' || (x % 100003) || '.' END,
       {ts(f"{base} + {issue_of} * 60 - {per_issue} + {k}")},
       CASE WHEN {k} % 5 <> 4 AND {k} % 2 = 1 THEN 'delivered' END,
       CASE WHEN {k} % 5 = 4 THEN 'escalated' END
FROM n;
"""


def pg_tail():
    return """
SELECT setval(pg_get_serial_sequence('staff', 'id'), (SELECT MAX(id) FROM staff));
SELECT setval(pg_get_serial_sequence('customers', 'id'), (SELECT MAX(id) FROM customers));
SELECT setval(pg_get_serial_sequence('contacts', 'id'), (SELECT MAX(id) FROM contacts));
SELECT setval(pg_get_serial_sequence('issues', 'id'), (SELECT MAX(id) FROM issues));
SELECT setval(pg_get_serial_sequence('messages', 'id'), (SELECT MAX(id) FROM messages));
SELECT setval(pg_get_serial_sequence('api_tokens', 'id'), (SELECT MAX(id) FROM api_tokens));
ANALYZE;
"""


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    url, n = sys.argv[1], int(sys.argv[2])
    per_issue = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    t = time.time()
    if url.startswith("sqlite:"):
        import sqlite3
        # sqlx's spelling: sqlite:///abs/path, sqlite://rel/path, sqlite:path
        path = url[len("sqlite://"):] if url.startswith("sqlite://") else url[len("sqlite:"):]
        path = path.split("?")[0]
        if not os.path.exists(path):
            raise SystemExit(f"{path}: run `switchboard migrate` on it first")
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = OFF")
        db.executescript("BEGIN;\n" + sql_script("sqlite", n, per_issue) + "COMMIT;\n")
        db.close()
    else:
        script = "\\set ON_ERROR_STOP 1\nBEGIN;\n" + sql_script("postgres", n, per_issue) + "COMMIT;\n" + pg_tail()
        subprocess.run(["psql", "-q", url], input=script, text=True, check=True,
                       stdout=subprocess.DEVNULL)
    print(f"seeded {n} issues, {n * per_issue} messages in {time.time() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
