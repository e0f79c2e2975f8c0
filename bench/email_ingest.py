#!/usr/bin/env python3
"""Email ingest benchmark: N generated mails in a real Dovecot mailbox,
ingested by a real switchboard process; reports mails/s and peak RSS.

    cargo build --release
    python3 bench/email_ingest.py 1000 10000     # one run per N

Each run: a fresh private Dovecot (scripts/dovecot.sh) and a fresh SQLite
database; N mails are APPENDed first (not timed), then `switchboard serve`
starts and the clock runs from its "listening on" line until
`switchboard_ingest_total{channel="email"}` reaches N. Peak RSS is the
process's VmHWM at the end. Senders repeat (N/4 customers) so threading
onto open issues is exercised, not only issue creation.
Set SWITCHBOARD_BIN to measure another binary; DATABASE_URL to use
PostgreSQL instead of SQLite.
"""
import email.message
import imaplib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.abspath(os.environ.get("SWITCHBOARD_BIN", os.path.join(ROOT, "target/release/switchboard")))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_mail(i, customers):
    m = email.message.EmailMessage()
    c = i % customers
    m["From"] = f"Customer {c} <customer{c}@example.com>"
    m["To"] = "support@bench.test"
    m["Subject"] = f"Question {i} about my order"
    m["Message-ID"] = f"<bench-{i}@example.com>"
    m["Date"] = "Mon, 03 Jun 2024 10:00:00 +0000"
    m.set_content(f"Hello,\n\nthis is message {i}. My order has not arrived.\n\nOn Sun, someone wrote:\n> earlier text\n-- \nCustomer {c}\n")
    return m.as_bytes()


def ingested(metrics_url):
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("switchboard_ingest_total{") and 'channel="email"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def run(n):
    work = tempfile.mkdtemp(prefix="sb-bench-")
    os.chmod(work, 0o755)  # Dovecot's unprivileged processes must reach DIR
    dc = os.path.join(work, "dovecot")
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts/dovecot.sh"), "start", dc], check=True, capture_output=True, text=True).stdout
    imap_port = int(re.search(r"imap_port=(\d+)", out).group(1))
    proc = None
    try:
        subprocess.run(["bash", os.path.join(ROOT, "scripts/dovecot.sh"), "user", dc, "support", "pw"], check=True, capture_output=True)
        imap = imaplib.IMAP4("127.0.0.1", imap_port)
        imap.login("support", "pw")
        t = time.time()
        for i in range(n):
            imap.append("INBOX", None, None, make_mail(i, max(1, n // 4)))
        imap.logout()
        append_s = time.time() - t
        port = free_port()
        db = os.environ.get("DATABASE_URL", f"sqlite://{work}/bench.db")
        cfg = os.path.join(work, "sb.toml")
        with open(cfg, "w") as f:
            f.write(f"""
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
[database]
url = "{db}"
[[imap]]
name = "bench"
host = "127.0.0.1"
port = {imap_port}
security = "plain"
username = "support"
password = "pw"
address = "support@bench.test"
poll_interval = "1s"
[attachments]
dir = "{work}/files"
[logging]
level = "warn,switchboard::app=info"
format = "json"
""")
        proc = subprocess.Popen([BIN, "--config", cfg, "serve"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=work)
        for line in proc.stdout:
            if "listening on" in line:
                break
        start = time.time()
        metrics = f"http://127.0.0.1:{port}/metrics"
        while True:
            done = ingested(metrics)
            if done >= n:
                break
            if time.time() - start > 3600:
                raise SystemExit(f"timed out with {done}/{n} ingested")
            time.sleep(0.05)
        elapsed = time.time() - start
        rss = peak_rss_kib(proc.pid)
        result = {"n": n, "seconds": round(elapsed, 2), "mails_per_s": round(n / elapsed, 1), "peak_rss_mib": round(rss / 1024, 1), "append_seconds": round(append_s, 1), "database": db.split(":")[0]}
        print(json.dumps(result), flush=True)
        return result
    finally:
        if proc:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run(["bash", os.path.join(ROOT, "scripts/dovecot.sh"), "stop", dc], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if not os.path.exists(BIN):
        raise SystemExit(f"{BIN} not found: run `cargo build --release` first (or set SWITCHBOARD_BIN)")
    for arg in sys.argv[1:] or ["1000"]:
        run(int(arg))
