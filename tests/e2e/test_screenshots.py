"""A realistic morning in the tracker, photographed for the README
(docs/screenshots/), and checked on the way: every page renders with no
Content-Security-Policy violation or script error, the phone-width tracker
does not scroll sideways, and dark mode really changes the colours.

The data comes in through the real doors: email through Dovecot (so
customers have names), SMS through the signed webhook, work through the API
as two colleagues, and the viewer's own work through the page.
"""

import re
import time

from playwright.sync_api import expect

import harness
import web

PHONE_ISSUE = "+15550160001"


def morning(server):
    """Customers write in; Tom works some of it through the API."""
    tom = server.add_staff("Tom Reed", "tom@e2e.test")
    dc = server.dovecot
    dc.deliver("Jane Doe", "jane.doe@example.com", "Invoice 2024-118 shows the wrong VAT number",
               "Hello,\n\nour VAT number is DE811907980, the invoice says DE811907908.\n\nJane")
    jane_old = server.issue_of("jane.doe@example.com", timeout=20)
    status, _ = server.api("POST", f"/api/issues/{jane_old['id']}/take", token=tom["token"])
    assert status == 200
    status, _ = server.api("POST", f"/api/issues/{jane_old['id']}/resolve", token=tom["token"])
    assert status == 200
    dc.deliver("Jane Doe", "jane.doe@example.com", "Re: Invoice 2024-118 shows the wrong VAT number",
               "Thanks, the corrected invoice arrived. One more question: can you send it as PDF/A?")
    dc.deliver("Peter Müller", "peter.mueller@example.de", "Delivery to the wrong address",
               "The courier left my parcel at number 12 instead of 21.")
    dc.deliver("Sofia Rossi", "sofia.rossi@example.it", "Can I switch to the yearly plan?",
               "Hi! Is there a discount if I pay for a year up front?")
    for contact in ("peter.mueller@example.de", "sofia.rossi@example.it"):
        server.issue_of(contact, timeout=20)
    jane = server.issue_of("jane.doe@example.com")  # the open one, following up the resolved one
    server.sms("+15550160002", "Thanks!")
    peter = server.issue_of("peter.mueller@example.de")
    server.api("POST", f"/api/issues/{peter['id']}/take", token=tom["token"])
    phone = server.sms(PHONE_ISSUE, "Hi, my parcel tracking hasn't updated since Monday. Order 5521.")
    server.sms("+15550160003", "Is the shop in Via Roma open on Sunday?")
    return tom, jane, phone


def test_screenshots(mail_server, people, twilio):
    server = mail_server
    twilio.respond_after = 0.2
    tom, jane, phone = morning(server)
    maya, page = people.agent(server, "Maya Lopez", "maya@e2e.test", viewport={"width": 1280, "height": 800})

    # Maya works the SMS issue on the page.
    web.open_issue(page, server, phone["id"])
    page.get_by_role("button", name="Take It").click()
    expect(page.get_by_role("button", name="Take It")).to_have_count(0)
    page.get_by_label("Reply to customer").fill(
        "Hi! The courier scanned it this morning; it should reach you tomorrow.")
    page.get_by_role("button", name="Send reply").click()
    page.get_by_label("Private comment").fill("Checked with the courier: delayed at the Newark hub.")
    page.get_by_role("button", name="Add comment").click()
    expect(page.get_by_role("main").get_by_text("Newark hub").first).to_be_visible()
    server.sms(PHONE_ISSUE, "Great, thank you! Will someone need to sign for it?")
    expect(page.get_by_role("main").get_by_text("need to sign for it").first).to_be_visible(timeout=3000)
    time.sleep(1.0)  # the reply's delivery report
    page.reload()
    page.mouse.move(0, 0)
    web.screenshot(page, "issue.png", full_page=True)

    # View Customer on Jane's issue: contacts and her past issue.
    web.open_issue(page, server, jane["id"])
    page.get_by_role("button", name="View Customer").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Jane Doe")
    expect(dialog).to_contain_text("jane.doe@example.com")
    expect(dialog.get_by_role("link", name=re.compile(r"#\d+"))).to_have_count(2)
    web.screenshot(page, "customer.png")
    page.keyboard.press("Escape")

    # The tracker; the open tabs in turn.
    page.goto(server.base + "/")
    expect(web.tab(page, "Unassigned")).to_be_visible()
    expect(page.get_by_role("main").get_by_text("Sofia Rossi").first).to_be_visible()
    web.screenshot(page, "tracker.png")
    for label in ("Mine", "Assigned", "Closed", "Unassigned"):
        web.tab(page, label).click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()

    page.goto(server.base + "/settings")
    expect(page.get_by_label("issue_opened in_app")).to_be_visible()
    expect(page.get_by_role("button", name="Save")).to_be_visible()
    web.screenshot(page, "settings.png", full_page=True)

    # Phone width.
    phone_page = people.context(viewport={"width": 390, "height": 844}).new_page()
    web.sign_in(phone_page, server.base, "maya@e2e.test", harness.PASSWORD)
    expect(web.tab(phone_page, "Unassigned")).to_be_visible()
    scroll, _ = web.no_sideways_scroll(phone_page)
    assert scroll <= 390, f"the tracker is {scroll} px wide at 390 px"
    web.screenshot(phone_page, "tracker-390.png", full_page=True)

    # Dark mode is a different palette, not the light one.
    dark_page = people.context(viewport={"width": 1280, "height": 800}, color_scheme="dark").new_page()
    web.sign_in(dark_page, server.base, "maya@e2e.test", harness.PASSWORD)
    expect(web.tab(dark_page, "Unassigned")).to_be_visible()
    web.screenshot(dark_page, "tracker-dark.png")
    background = "() => getComputedStyle(document.body).backgroundColor"
    assert dark_page.evaluate(background) != page.evaluate(background), "dark mode keeps the light background"

    assert people.csp_violations() == [], people.csp_violations()
    assert people.page_errors == [], people.page_errors
    assert people.dialogs == []
