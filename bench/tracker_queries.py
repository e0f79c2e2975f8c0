#!/usr/bin/env python3
"""Times the Issue Tracker's API requests against a running daemon whose
database bench/seed_million.py filled (issue 12; see bench/TRACKER.md).

    python3 bench/tracker_queries.py http://127.0.0.1:8080 [reps] [label]

Each request shape runs `reps` times (default 50) after two untimed warm-up
runs, over one keep-alive connection, one request at a time; p50 and p99 are
the client's wall-clock milliseconds (loopback, so network time is small).
Where a shape takes a value (a customer, an assignee, a phone number), the
repetitions cycle through different ones, so caches see realistic spread.
Prints one JSON line per shape, then a Markdown table.
"""
import http.client
import json
import sys
import time
import urllib.parse

TOKEN = "bench-token"


class Client:
    def __init__(self, base):
        u = urllib.parse.urlparse(base)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)

    def get(self, path):
        self.conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
        r = self.conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise SystemExit(f"GET {path}: {r.status} {body[:300]!r}")
        return json.loads(body)


def pct(sorted_ms, p):
    i = min(len(sorted_ms) - 1, max(0, round(p / 100 * len(sorted_ms) + 0.5) - 1))
    return sorted_ms[i]


def q(text):
    return "/api/issues?q=" + urllib.parse.quote(text, safe="")


def shapes(c):
    """(name, list of paths to cycle through)."""
    first = c.get("/api/issues?status=closed&limit=100")
    customers = sorted({i["customer"]["id"] for i in first["issues"]})[:20]
    # The cursor 50 pages (of 20) deep into closed issues.
    path, cursor = "/api/issues?status=closed", None
    for _ in range(50):
        page = c.get(path + (f"&cursor={cursor}" if cursor else ""))
        cursor = page["next_cursor"]
    deep = f"/api/issues?status=closed&cursor={cursor}"
    one = first["issues"][0]
    phone = one["customer"]["phone"]  # +1555XXXXXXX
    d = phone[2:]
    email_issue = next((i for i in first["issues"] if i["customer"]["email"]), None)
    email = email_issue["customer"]["email"] if email_issue else "alice.smith50@example.com"
    return [
        ("GET /api/issues (open, default)", ["/api/issues"]),
        ("?status=unassigned", ["/api/issues?status=unassigned"]),
        ("?status=closed", ["/api/issues?status=closed"]),
        ("?status=closed, 50 pages deep", [deep]),
        ("?status=assigned&assignee=N", [f"/api/issues?status=assigned&assignee={s}" for s in range(2, 21)]),
        ("?assignee=N&status=closed", [f"/api/issues?assignee={s}&status=closed" for s in range(2, 21)]),
        ("?customer=N", [f"/api/issues?customer={c}" for c in customers]),
        ("?q=+1 555-… (phone, E.164 spaced)", [q(f"+1 {d[0:3]}-{d[3:6]}-{d[6:]}")]),
        ("?q=(555) … (phone, national)", [q(f"({d[0:3]}) {d[3:6]}-{d[6:]}")]),
        ("?q=5550… (phone, digits)", [q(d)]),
        ("?q=email (exact)", [q(email)]),
        ("?q=email prefix", [q(email.split("@")[0])]),
        ("?q=customer name word", [q("Zebrowski")]),
        ("?q=refund (subject word)", [q("refund")]),
        ("?q=two subject words", [q("printer working")]),
        ("?q=body word (1.5% of messages)", [q("kettle")]),
        ("?q=rare body word (ref code)", [q(f"ref{n}") for n in range(4242, 4262)]),
        ("?q=#id", [q(f"#{one['id']}")]),
        ("/api/me (badges)", ["/api/me"]),
        ("an issue's messages", [f"/api/issues/{one['id']}/messages"]),
    ]


def main():
    base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    label = sys.argv[3] if len(sys.argv) > 3 else ""
    c = Client(base)
    results = []
    for name, paths in shapes(c):
        for p in paths[:2]:
            c.get(p)
        ms = []
        for n in range(reps):
            p = paths[n % len(paths)]
            t = time.perf_counter()
            c.get(p)
            ms.append((time.perf_counter() - t) * 1000)
        ms.sort()
        r = {"label": label, "request": name, "p50_ms": round(pct(ms, 50), 2),
             "p99_ms": round(pct(ms, 99), 2), "max_ms": round(ms[-1], 2), "n": reps}
        results.append(r)
        print(json.dumps(r), flush=True)
    print(f"\n| request | p50 ms | p99 ms |\n|---|---|---|")
    for r in results:
        print(f"| {r['request']} | {r['p50_ms']} | {r['p99_ms']} |")


if __name__ == "__main__":
    main()
