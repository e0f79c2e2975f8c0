"""The world the browser tests run in: a real `switchboard serve` process,
a Twilio stand-in, and (for email) a private Dovecot.

Why it is shaped so:

* The web page is tested the way it ships: the release path is one binary
  that serves the page, so the tests start that binary (the one `cargo test`
  just built) with a temp config file, and read what it prints on stdout
  (`admin token: …`, `sign-in link: …`, `listening on …`) exactly as a
  newcomer would. No test reaches into the database: everything happens
  through the binary's own doors (the API with a bearer token, signed
  webhooks, the CLI, IMAP).
* Twilio is a small Python HTTP server in a thread. It answers the Messages
  API like Twilio does (201, a fresh `SM…` sid, status `queued`) after a
  short delay, so a person can see `queued` on the page first, and then
  calls our `StatusCallback` with a signed `sent` report, the way Twilio
  moves a message along. Replies therefore go queued → sending → sent.
* Inbound SMS are signed here in Python (HMAC-SHA1 over public_url + path +
  the sorted parameters, base64), independently of the Rust code, so a
  mistake on either side shows up.
* A customer's *name* only comes from an email display name (SPEC §1), so
  the tests that need a named customer deliver mail through a private
  Dovecot started with scripts/dovecot.sh, as the Rust IMAP tests do.
* Everything a process prints is kept in a log file in the test's temp dir;
  when start-up fails, its tail is in the error.
"""

import base64
import email.message
import email.utils
import hashlib
import hmac
import http.server
import imaplib
import json
import os
import queue
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOVECOT_SH = os.path.join(ROOT, "scripts", "dovecot.sh")

ACCOUNT_SID = "AC" + "e2e0" * 8
AUTH_TOKEN = "e2e-auth-token-" + "5" * 17
FROM_NUMBER = "+15550100"
PASSWORD = "correct horse battery staple"


def binary():
    """The switchboard binary `cargo test` built (SWITCHBOARD_BIN overrides)."""
    explicit = os.environ.get("SWITCHBOARD_BIN")
    if explicit:
        path = explicit
    else:
        target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
        if not os.path.isabs(target):
            target = os.path.join(ROOT, target)
        path = os.path.join(target, "debug", "switchboard")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is missing: run `cargo build` (or `cargo test`) first, or set SWITCHBOARD_BIN")
    return path


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def twilio_signature(url, params):
    """X-Twilio-Signature: base64(HMAC-SHA1(auth_token, url + sorted name+value))."""
    data = url + "".join(k + v for k, v in sorted(params, key=lambda kv: kv[0]))
    mac = hmac.new(AUTH_TOKEN.encode(), data.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def post_form(url, params, headers=None, timeout=10):
    body = urllib.parse.urlencode(params).encode()
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class TwilioStandIn:
    """Twilio's Messages API on loopback; records what was sent."""

    def __init__(self, respond_after=1.0, report_after=0.3):
        self.sent = []  # dicts of the form fields, in order
        self.respond_after = respond_after
        self.report_after = report_after
        self.errors = []
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
                expected_path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
                expected_auth = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
                if self.path != expected_path or self.headers.get("Authorization") != expected_auth:
                    stand_in.errors.append(f"unexpected request {self.path}")
                    self._answer(401, {"code": 20003, "message": "Authenticate"})
                    return
                sid = "SM" + secrets.token_hex(16)
                form["_sid"] = sid
                stand_in.sent.append(form)
                time.sleep(stand_in.respond_after)
                self._answer(201, {"sid": sid, "status": "queued", "to": form.get("To"), "body": form.get("Body")})
                callback = form.get("StatusCallback")
                if callback:
                    threading.Thread(target=stand_in._report, args=(callback, sid, "sent"), daemon=True).start()

            def _answer(self, code, obj):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def _report(self, callback, sid, status):
        time.sleep(self.report_after)
        params = [("AccountSid", ACCOUNT_SID), ("MessageSid", sid), ("MessageStatus", status)]
        try:
            code, text = post_form(callback, params, {"X-Twilio-Signature": twilio_signature(callback, params)})
        except OSError as e:  # the test (and its server) may be over already
            self.errors.append(f"status callback: {e}")
            return
        if code != 200:
            self.errors.append(f"status callback answered {code}: {text[:200]}")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Dovecot:
    """A private Dovecot (scripts/dovecot.sh) with one mailbox, `support`."""

    def __init__(self):
        # Not under pytest's tmp_path: its parents are 0700, and Dovecot's
        # unprivileged processes must reach the sockets and Maildirs.
        self.top = tempfile.mkdtemp(prefix="sb-e2e-dovecot-")
        os.chmod(self.top, 0o755)
        self.dir = os.path.join(self.top, "dovecot")
        out = subprocess.run(["bash", DOVECOT_SH, "start", self.dir], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"scripts/dovecot.sh start failed:\n{out.stderr[-3000:]}")
        self.port = int(re.search(r"imap_port=(\d+)", out.stdout).group(1))
        subprocess.run(["bash", DOVECOT_SH, "user", self.dir, "support", "pw"], check=True, capture_output=True)

    def config(self):
        return f"""
[[imap]]
name = "support"
host = "127.0.0.1"
port = {self.port}
security = "plain"
username = "support"
password = "pw"
address = "support@e2e.test"
poll_interval = "1s"
"""

    def deliver(self, from_name, from_addr, subject, text):
        m = email.message.EmailMessage()
        m["From"] = email.utils.formataddr((from_name, from_addr))
        m["To"] = "support@e2e.test"
        m["Subject"] = subject
        m["Message-ID"] = email.utils.make_msgid(domain="customer.example")
        m["Date"] = email.utils.formatdate(localtime=False)
        m.set_content(text)
        imap = imaplib.IMAP4("127.0.0.1", self.port)
        try:
            imap.login("support", "pw")
            imap.append("INBOX", None, None, m.as_bytes())
        finally:
            imap.logout()

    def stop(self):
        subprocess.run(["bash", DOVECOT_SH, "stop", self.dir], capture_output=True)
        shutil.rmtree(self.top, ignore_errors=True)


class Switchboard:
    """One `switchboard serve` process with its own SQLite file and ports."""

    def __init__(self, work, twilio, extra_config=""):
        self.work = work
        self.twilio = twilio
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.config_path = os.path.join(work, "switchboard.toml")
        os.makedirs(os.path.join(work, "files"), exist_ok=True)
        with open(self.config_path, "w") as f:
            f.write(f"""
[server]
listen = "127.0.0.1:{self.port}"
public_url = "{self.base}"

[database]
url = "sqlite://{work}/sb.db"

[twilio]
enabled = true
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
from = "{FROM_NUMBER}"
api_base = "{twilio.base}"

[attachments]
dir = "{work}/files"

[logging]
level = "info"
{extra_config}
""")
        self.log_path = os.path.join(work, "switchboard.log")
        self.lines = queue.Queue()
        self.admin_token = None
        self.admin_link = None
        self.proc = subprocess.Popen(
            [binary(), "--config", self.config_path, "serve"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=work,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        deadline = time.time() + 60
        while True:
            left = deadline - time.time()
            if left <= 0:
                self.stop()
                raise RuntimeError(f"switchboard did not report `listening on` in 60 s:\n{self.log_tail()}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"switchboard exited during start-up:\n{self.log_tail()}")
            if line.startswith("admin token: "):
                self.admin_token = line.split(": ", 1)[1].strip()
            elif line.startswith("sign-in link: "):
                self.admin_link = line.split(": ", 1)[1].strip()
            elif "listening on" in line:
                break
        if not self.admin_token or not self.admin_link:
            raise RuntimeError(f"no `admin token:` / `sign-in link:` lines on stdout:\n{self.log_tail()}")

    def _pump(self):
        with open(self.log_path, "a") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                self.lines.put(line)
        self.lines.put(None)

    def log_tail(self, n=40):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    # -- the API, as an admin with the printed token -------------------------

    def api(self, method, path, body=None, token=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token or self.admin_token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                text = r.read().decode()
                return r.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, text

    def add_staff(self, name, email, role="agent"):
        status, body = self.api("POST", "/api/staff", {"name": name, "email": email, "role": role})
        assert status == 201, f"POST /api/staff answered {status}: {body}"
        return {"id": body["staff"]["id"], "name": name, "email": email, "token": body["token"]}

    def invite(self, email_or_id):
        """`switchboard staff invite --staff X`: the sign-in link alone on stdout."""
        out = subprocess.run(
            [binary(), "--config", self.config_path, "staff", "invite", "--staff", str(email_or_id)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.work,
        )
        assert out.returncode == 0, f"staff invite failed: {out.stderr}"
        link = out.stdout.strip()
        assert link.startswith(self.base + "/welcome/"), f"unexpected invite output: {out.stdout!r}"
        return link

    def issues(self, **query):
        status, body = self.api("GET", "/api/issues?" + urllib.parse.urlencode(query))
        assert status == 200, body
        return body["issues"]

    def issue(self, issue_id):
        status, body = self.api("GET", f"/api/issues/{issue_id}")
        assert status == 200, body
        return body

    def messages(self, issue_id):
        status, body = self.api("GET", f"/api/issues/{issue_id}/messages?limit=100")
        assert status == 200, body
        return body["messages"]

    # -- customers ----------------------------------------------------------

    def sms(self, from_number, text, media=()):
        """An inbound SMS through the signed webhook; returns its issue."""
        path = "/webhooks/twilio/sms"
        params = [
            ("MessageSid", "SM" + secrets.token_hex(16)),
            ("AccountSid", ACCOUNT_SID),
            ("From", from_number),
            ("To", FROM_NUMBER),
            ("Body", text),
            ("NumMedia", str(len(media))),
        ]
        url = self.base + path
        code, answer = post_form(url, params, {"X-Twilio-Signature": twilio_signature(url, params)})
        assert code == 200, f"webhook answered {code}: {answer}"
        # Twilio is answered only after the commit (SPEC §3.2): from here
        # on the message exists, so "appears within 1 s" counts from now.
        self.committed_at = time.monotonic()
        return self.issue_of(from_number)

    def issue_of(self, contact, timeout=10.0):
        """The customer's open issue, waiting for it to exist (email is polled)."""
        deadline = time.time() + timeout
        while True:
            found = self.issues(q=contact, limit=5)
            if found:
                return found[0]
            if time.time() > deadline:
                raise AssertionError(f"no open issue for {contact} after {timeout} s")
            time.sleep(0.1)
