"""Customer content is text (SPEC §9): markup in an SMS body, an email
subject and a customer's name (from the email display name) shows as the
characters the customer typed, on the server-rendered page and on the rows
and timeline entries the page's script builds from live events.

"No dialog fired" alone would prove little: the page's Content-Security-
Policy already blocks inline script and handlers, so an injection would be
refused silently. The test therefore also checks that no element the
customer wrote exists in the DOM, and that the browser reported no CSP
violation (which is what an injected handler would cause).
"""

import re
import time

from playwright.sync_api import expect

import web

SCRIPT = '<script>alert("sb-xss-script")</script>'
IMG = '<img src=x onerror=alert("sb-xss-img")>'
NAME = '<img src=x onerror=alert("sb-xss-name")> Mallory'
SUBJECT = '<script>alert("sb-xss-subject")</script> Refund'
SMS_FROM = "+15550150001"
MAIL_FROM = "mallory@customer.example"


def assert_inert(page, people):
    injected = page.evaluate(
        """() => [...document.querySelectorAll('img[src="x"], [onerror], script:not([src])')]
                 .map(e => e.outerHTML.slice(0, 120))"""
    )
    assert injected == [], f"customer markup became elements: {injected}"
    assert people.dialogs == [], f"customer script ran: {people.dialogs}"
    assert people.csp_violations() == [], people.csp_violations()
    assert people.page_errors == [], people.page_errors


def test_customer_markup_stays_inert_text(mail_server, people):
    server = mail_server
    page = people.admin(server)
    page.goto(server.base + "/")
    expect(web.tab(page, "Unassigned")).to_be_visible()
    time.sleep(0.5)

    # Arrives while the tracker is open: the live row is built by script.
    sms = server.sms(SMS_FROM, f"Hi {SCRIPT} and {IMG} bye")
    server.dovecot.deliver(NAME, MAIL_FROM, SUBJECT, f"Please refund me {IMG}")
    mail = server.issue_of(MAIL_FROM, timeout=20)
    assert mail["customer"]["name"].startswith("<img"), mail["customer"]
    main = page.get_by_role("main")
    expect(main.get_by_text(IMG).first).to_be_visible()
    expect(main.get_by_text(re.compile(re.escape(NAME))).first).to_be_visible()
    expect(main.get_by_text(re.compile(re.escape(SUBJECT))).first).to_be_visible()
    assert_inert(page, people)

    # Server-rendered rows.
    page.reload()
    expect(main.get_by_text(IMG).first).to_be_visible()
    expect(main.get_by_text(re.compile(re.escape(NAME))).first).to_be_visible()
    assert_inert(page, people)

    # The issue page, and a new message arriving while it is open.
    web.open_issue(page, server, sms["id"])
    expect(main.get_by_text(SCRIPT).first).to_be_visible()
    time.sleep(0.5)
    server.sms(SMS_FROM, f"Again {IMG}")
    expect(main.get_by_text(f"Again {IMG}").first).to_be_visible(timeout=3000)
    assert_inert(page, people)

    # The email issue and View Customer, where the name is the title.
    web.open_issue(page, server, mail["id"])
    expect(main.get_by_text(re.compile(re.escape(SUBJECT))).first).to_be_visible()
    page.get_by_role("button", name="View Customer").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(NAME)
    expect(dialog).to_contain_text(MAIL_FROM)
    assert_inert(page, people)
