"""Fixtures for the browser tests: one headless Chromium per run, a fresh
switchboard (own SQLite file, own ports, own Twilio stand-in) per test, and
browser contexts that are closed after each test.

Why per test: the page shows counts, unread badges and "newest first" rows,
so a test that sees another test's issues would assert on luck. A server
starts in well under a second on SQLite; isolation is cheaper than care.

Chromium is Debian's (/usr/bin/chromium, or $CHROMIUM), launched directly:
`playwright install` needs the network, which CI machines may not have.
"""

import os

import pytest
from playwright.sync_api import expect, sync_playwright

import harness
import web

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

expect.set_options(timeout=5000)


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def twilio():
    t = harness.TwilioStandIn()
    yield t
    t.close()


def _start(request, tmp_path, twilio, extra=""):
    server = harness.Switchboard(str(tmp_path), twilio, extra)
    request.node.sb_servers = getattr(request.node, "sb_servers", []) + [server]
    return server


@pytest.fixture
def server(request, tmp_path, twilio):
    s = _start(request, tmp_path, twilio)
    yield s
    s.stop()


@pytest.fixture
def mail_server(request, tmp_path, twilio):
    """A switchboard that also reads a private Dovecot mailbox."""
    dovecot = harness.Dovecot()
    try:
        s = _start(request, tmp_path, twilio, dovecot.config())
        s.dovecot = dovecot
        yield s
        s.stop()
    finally:
        dovecot.stop()


@pytest.fixture
def people(browser, request):
    """Opens signed-in browser pages; closes their contexts after the test."""
    p = web.People(browser)
    request.node.sb_people = p
    yield p
    p.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:
        for server in getattr(item, "sb_servers", []):
            report.sections.append(("switchboard log (tail)", server.log_tail(60)))
        people = getattr(item, "sb_people", None)
        if people:
            report.sections.append(("browser console", "\n".join(people.console[-60:])))
    return report
