#!/usr/bin/env python3
"""Crash campaign (issue 11): kill -9 the daemon under load, again and
again, then check that nothing acknowledged was lost and nothing was stored
twice.

    python3 scripts/crash.py sms  [--messages 3000] [--threads 16] [--kills 3] [--postgres]
    python3 scripts/crash.py mail [--mails 5000] [--kills 3] [--postgres]

sms:  signed Twilio webhooks from many threads. A webhook that got no 200
      (connection refused or reset while the daemon was down, a 5xx) is sent
      again later, as Twilio retries. A message counts as acknowledged when
      it got a 200.
mail: a real Dovecot mailbox (scripts/dovecot.sh) filled with N mails. The
      daemon fetches and marks each \\Seen after its commit; a mail whose
      ingest was cut short by the kill is still unseen and is fetched again
      by the next process. Acknowledged = \\Seen on the server.

Between kills the script waits for progress (a share of the load stored),
kills the process with SIGKILL, and restarts it at once. At the end it
reads the database: every acknowledged message must be stored exactly once
(by its MessageSid or Message-ID), and no external id may appear twice.
The numbers are printed as one JSON line; the exit status is 1 on any loss
or duplicate.

The binary is SWITCHBOARD_BIN or target/release/switchboard (falling back
to target/debug/switchboard). --postgres uses a fresh database on
127.0.0.1:5432 (trust auth), created and dropped by the script.
"""
import argparse
import base64
import email.message
import hashlib
import hmac
import http.client
import imaplib
import json
import os
import queue
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCOUNT_SID = "AC" + "c" * 32
AUTH_TOKEN = "crashcampaigntoken0123456789abcd"
OUR_NUMBER = "+15550109999"


def binary():
    if os.environ.get("SWITCHBOARD_BIN"):
        return os.path.abspath(os.environ["SWITCHBOARD_BIN"])
    for profile in ("release", "debug"):
        path = os.path.join(ROOT, "target", profile, "switchboard")
        if os.path.exists(path):
            return path
    raise SystemExit("no switchboard binary: run `cargo build --release` (or set SWITCHBOARD_BIN)")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def twilio_signature(url, params):
    """Twilio's X-Twilio-Signature: HMAC-SHA1 over the URL and the sorted
    parameters, base64."""
    data = url + "".join(k + v for k, v in sorted(params))
    mac = hmac.new(AUTH_TOKEN.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


class Database:
    """A fresh SQLite file, or a fresh PostgreSQL database."""

    def __init__(self, work, postgres):
        self.postgres = postgres
        if postgres:
            self.name = f"crash_{os.getpid()}_{random.randrange(1 << 30)}"
            self.psql("postgres", f'CREATE DATABASE "{self.name}"')
            self.url = f"postgres://postgres@127.0.0.1:5432/{self.name}"
        else:
            self.path = os.path.join(work, "crash.db")
            self.url = f"sqlite://{self.path}"

    @staticmethod
    def psql(db, sql):
        return subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-At", "-F", "\t", "-c", sql],
            check=True, capture_output=True, text=True,
        ).stdout

    def external_ids(self, channel):
        """Every stored inbound message's external id of a channel."""
        sql = f"SELECT external_id FROM messages WHERE kind = 'customer' AND channel = '{channel}'"
        if self.postgres:
            ids = [line for line in self.psql(self.name, sql).splitlines() if line]
        else:
            with sqlite3.connect(self.path) as c:
                ids = [r[0] for r in c.execute(sql)]
        return [i.strip("<>") for i in ids]

    def drop(self):
        if self.postgres:
            self.psql("postgres", f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class Daemon:
    """`switchboard serve` with a config file; killed and restarted at will."""

    def __init__(self, work, config):
        self.work = work
        self.cfg = os.path.join(work, "switchboard.toml")
        with open(self.cfg, "w") as f:
            f.write(config)
        self.proc = None
        self.log = open(os.path.join(work, "daemon.log"), "a")
        self.starts = 0
        self.resumed = []  # seconds from each kill to the next stored message

    def start(self):
        self.proc = subprocess.Popen(
            [binary(), "--config", self.cfg, "serve"],
            stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=self.work,
        )
        for line in self.proc.stdout:
            if "listening on" in line:
                break
        else:
            raise SystemExit(f"the daemon did not start; see {self.work}/daemon.log")
        # Keep draining stdout so the process never blocks on a full pipe.
        threading.Thread(target=lambda p=self.proc: [None for _ in p.stdout], daemon=True).start()
        self.starts += 1

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def base_config(port, db_url, work):
    return f"""
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
[database]
url = "{db_url}"
max_connections = 8
[attachments]
dir = "{work}/files"
[logging]
level = "warn,switchboard::app=info"
format = "json"
"""


def kill_loop(daemon, kills, progress, total, done):
    """Kills the daemon each time another share of `total` is stored, and
    records how long after each kill the next message was stored (the
    restart, plus for mail the wait for the dead process's mailbox lease)."""
    for k in range(1, kills + 1):
        target = total * k // (kills + 1)
        while progress() < target and not done.is_set():
            time.sleep(0.05)
        if done.is_set():
            return
        time.sleep(random.uniform(0, 0.3))
        at_kill = progress()
        killed = time.time()
        daemon.kill9()
        daemon.start()
        while progress() <= at_kill and at_kill < total and not done.is_set():
            time.sleep(0.05)
        daemon.resumed.append(round(time.time() - killed, 1))


def run_sms(args, work, db):
    port = free_port()
    twilio_down = free_port()  # nothing listens: outbound SMS is not the subject here
    config = base_config(port, db.url, work) + f"""
[twilio]
enabled = true
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
from = "{OUR_NUMBER}"
api_base = "http://127.0.0.1:{twilio_down}"
"""
    daemon = Daemon(work, config)
    daemon.start()
    url = f"http://127.0.0.1:{port}/webhooks/twilio/sms"
    todo = queue.Queue()
    for i in range(args.messages):
        sid = "SMcrash" + format(i, "026x")
        sender = "+1555%07d" % (i % max(1, args.messages // 3))
        todo.put((sid, sender, f"Message {i}: my order has not arrived."))
    acked = set()
    attempts = [0]
    lock = threading.Lock()
    done = threading.Event()

    def worker():
        while not done.is_set():
            try:
                sid, sender, body = todo.get(timeout=0.2)
            except queue.Empty:
                continue
            params = [("MessageSid", sid), ("SmsSid", sid), ("AccountSid", ACCOUNT_SID),
                      ("From", sender), ("To", OUR_NUMBER), ("Body", body), ("NumMedia", "0")]
            data = urllib.parse.urlencode(params)
            ok = False
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                c.request("POST", "/webhooks/twilio/sms", body=data, headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": twilio_signature(url, params),
                })
                r = c.getresponse()
                r.read()
                ok = r.status == 200
                c.close()
            except (OSError, http.client.HTTPException):
                ok = False
            with lock:
                attempts[0] += 1
                if ok:
                    acked.add(sid)
            if not ok:
                time.sleep(0.05)  # Twilio retries later
                todo.put((sid, sender, body))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.threads)]
    start = time.time()
    for t in threads:
        t.start()
    killer = threading.Thread(target=kill_loop, args=(daemon, args.kills, lambda: len(acked), args.messages, done))
    killer.start()
    while len(acked) < args.messages:
        if time.time() - start > args.timeout:
            break
        time.sleep(0.1)
    done.set()
    killer.join()
    for t in threads:
        t.join()
    daemon.stop()
    stored = db.external_ids("sms")
    return report("sms", args.messages, acked, stored, daemon, attempts[0], time.time() - start)


def make_mail(i):
    m = email.message.EmailMessage()
    c = i % 997
    m["From"] = f"Customer {c} <customer{c}@example.com>"
    m["To"] = "support@crash.test"
    m["Subject"] = f"Question {i}"
    m["Message-ID"] = f"<crash-{i}@example.com>"
    m["Date"] = "Mon, 03 Jun 2024 10:00:00 +0000"
    m.set_content(f"Hello,\n\nthis is mail {i}.\n")
    return m.as_bytes()


def run_mail(args, work, db):
    dc = os.path.join(work, "dovecot")
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts/dovecot.sh"), "start", dc],
                         check=True, capture_output=True, text=True).stdout
    imap_port = int(re.search(r"imap_port=(\d+)", out).group(1))
    daemon = None
    try:
        subprocess.run(["bash", os.path.join(ROOT, "scripts/dovecot.sh"), "user", dc, "support", "pw"],
                       check=True, capture_output=True)
        imap = imaplib.IMAP4("127.0.0.1", imap_port)
        imap.login("support", "pw")
        for i in range(args.mails):
            imap.append("INBOX", None, None, make_mail(i))
        imap.logout()
        port = free_port()
        config = base_config(port, db.url, work) + f"""
[[imap]]
name = "crash"
host = "127.0.0.1"
port = {imap_port}
security = "plain"
username = "support"
password = "pw"
address = "support@crash.test"
poll_interval = "1s"
"""
        daemon = Daemon(work, config)
        start = time.time()
        daemon.start()
        done = threading.Event()
        killer = threading.Thread(target=kill_loop, args=(
            daemon, args.kills, lambda: len(set(db.external_ids("email"))), args.mails, done))
        killer.start()
        seen = 0
        while time.time() - start < args.timeout:
            seen = count_seen(imap_port)
            if seen >= args.mails:
                break
            time.sleep(0.5)
        done.set()
        killer.join()
        # The last fetched batch is committed before it is marked seen.
        time.sleep(1)
        daemon.stop()
        acked = {f"crash-{i}@example.com" for i in seen_numbers(imap_port)}
        stored = db.external_ids("email")
        return report("mail", args.mails, acked, stored, daemon, None, time.time() - start)
    finally:
        if daemon:
            daemon.stop()
        subprocess.run(["bash", os.path.join(ROOT, "scripts/dovecot.sh"), "stop", dc], capture_output=True)


def count_seen(port):
    return len(seen_numbers(port))


def seen_numbers(port):
    imap = imaplib.IMAP4("127.0.0.1", port)
    imap.login("support", "pw")
    imap.select("INBOX", readonly=True)
    _, data = imap.search(None, "SEEN")
    nums = data[0].split()
    numbers = []
    if nums:
        # Message-ID of each seen mail, in batches.
        for i in range(0, len(nums), 500):
            chunk = b",".join(nums[i:i + 500]).decode()
            _, items = imap.fetch(chunk, "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            for item in items:
                if isinstance(item, tuple):
                    m = re.search(rb"<crash-(\d+)@example.com>", item[1])
                    if m:
                        numbers.append(int(m.group(1)))
    imap.logout()
    return numbers


def report(kind, total, acked, stored, daemon, attempts, seconds):
    counts = {}
    for e in stored:
        counts[e] = counts.get(e, 0) + 1
    lost = sorted(a for a in acked if a not in counts)
    duplicates = sorted(e for e, n in counts.items() if n > 1)
    result = {
        "kind": kind, "messages": total, "acknowledged": len(acked), "stored": len(counts),
        "lost": len(lost), "stored_twice": len(duplicates), "kills": daemon.starts - 1,
        "seconds": round(seconds, 1),
        "resumed_after_s": daemon.resumed,
    }
    if attempts is not None:
        result["attempts"] = attempts
    print(json.dumps(result), flush=True)
    if lost:
        print("lost:", lost[:10], file=sys.stderr)
    if duplicates:
        print("stored twice:", duplicates[:10], file=sys.stderr)
    return not lost and not duplicates and len(acked) == total


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=["sms", "mail"])
    p.add_argument("--messages", type=int, default=3000)
    p.add_argument("--mails", type=int, default=5000)
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--kills", type=int, default=3)
    p.add_argument("--postgres", action="store_true")
    p.add_argument("--timeout", type=float, default=900, help="seconds before giving up")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="sb-crash-")
    os.chmod(work, 0o755)  # Dovecot's unprivileged processes must reach it
    db = Database(work, args.postgres)
    ok = False
    try:
        ok = (run_sms if args.kind == "sms" else run_mail)(args, work, db)
    finally:
        db.drop()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work} (daemon.log) for a look", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
