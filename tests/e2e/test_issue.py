"""The issue page (SPEC §9, §2): working an issue from first look to Resolve,
and two people pressing Take It at once."""

import re

from playwright.sync_api import expect

import web

CUSTOMER = "+15550140001"


def timeline_item(page, text):
    """The timeline entry (a list item) that shows `text`."""
    return page.get_by_role("main").get_by_role("listitem").filter(has_text=text).last


def test_take_reply_comment_resolve(server, people, twilio):
    issue = server.sms(CUSTOMER, "Hello, my order 5521 never arrived")
    ann, page = people.agent(server, "Ann Smith", "ann@e2e.test")

    # Open it from the tracker, as a person would.
    page.goto(server.base + "/")
    web.row_link(page, issue["id"]).click()
    expect(page).to_have_url(re.compile(rf"/issues/{issue['id']}$"))
    expect(page.get_by_role("heading", name=re.compile(rf"#{issue['id']}\b")).first).to_be_visible()
    expect(timeline_item(page, "my order 5521 never arrived")).to_be_visible()
    # Unassigned and open: nothing to unassign or reopen (SPEC §2).
    expect(page.get_by_role("button", name="Unassign")).to_have_count(0)
    expect(page.get_by_role("button", name="Reopen")).to_have_count(0)

    page.get_by_role("button", name="Take It").click()
    expect(page.get_by_role("button", name="Take It")).to_have_count(0)
    expect(page.get_by_role("button", name="Unassign")).to_be_visible()
    assert server.issue(issue["id"])["assignee"]["id"] == ann["id"]

    # Reply: queued on the page at once, then sent once Twilio has it.
    reply = "Sorry about that! A replacement ships today."
    page.get_by_label("Reply to customer").fill(reply)
    page.get_by_role("button", name="Send reply").click()
    item = timeline_item(page, reply)
    expect(item).to_be_visible()
    expect(item).to_contain_text(re.compile(r"queued|sending", re.I))
    expect(item).to_contain_text(re.compile(r"\bsent\b", re.I), timeout=10000)
    assert [(m["To"], m["Body"]) for m in twilio.sent] == [(CUSTOMER, reply)]
    assert not twilio.errors, twilio.errors

    # A private comment is marked Private and never sent.
    note = "Replacement order R-7731 created."
    page.get_by_label("Private comment").fill(note)
    page.get_by_role("button", name="Add comment").click()
    expect(timeline_item(page, note)).to_contain_text("Private")
    assert len(twilio.sent) == 1

    # Resolve closes it as resolved; only Reopen remains of the §2 buttons.
    page.get_by_role("button", name="Resolve").click()
    expect(page.get_by_role("button", name="Resolve")).to_have_count(0)
    expect(page.get_by_role("button", name="Mark as Closed")).to_have_count(0)
    expect(page.get_by_role("button", name="Reopen")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text(re.compile(r"resolved", re.I))
    after = server.issue(issue["id"])
    assert (after["status"], after["resolution"]) == ("closed", "resolved")
    assert after["closed_by"]["id"] == ann["id"]


def test_two_staff_race_take_it(server, people):
    issue = server.sms(CUSTOMER, "Can someone call me back?")
    ann, page_a = people.agent(server, "Ann Smith", "ann@e2e.test")
    bob, page_b = people.agent(server, "Bob Jones", "bob@e2e.test")
    for page in (page_a, page_b):
        web.open_issue(page, server, issue["id"])
        expect(page.get_by_role("button", name="Take It")).to_be_visible()

    # Both press at the same moment. Clicking one after the other would be
    # no race: the live page takes the button away from the second person
    # as soon as the first has the issue. So each page is told to click at
    # the same instant of the (shared) clock, a third of a second ahead.
    at = page_a.evaluate("Date.now()") + 300
    for page in (page_a, page_b):
        page.get_by_role("button", name="Take It").evaluate(
            "(button, at) => setTimeout(() => button.click(), at - Date.now())", at
        )
    for page in (page_a, page_b):
        expect(page.get_by_role("button", name="Take It")).to_have_count(0)

    winner_id = server.issue(issue["id"])["assignee"]["id"]
    assert winner_id in (ann["id"], bob["id"])
    winner, loser = (ann, bob) if winner_id == ann["id"] else (bob, ann)
    winner_page, loser_page = (page_a, page_b) if winner is ann else (page_b, page_a)
    # The loser is told, in a sentence, who has it; the winner sees no refusal.
    expect(loser_page.get_by_role("alert")).to_contain_text(winner["name"])
    expect(loser_page.get_by_role("alert")).not_to_contain_text("{")
    expect(winner_page.get_by_role("alert")).to_have_count(0)
    taken = [m for m in server.messages(issue["id"]) if m["kind"] == "event" and m["event"]["type"] == "taken"]
    assert len(taken) == 1, f"{len(taken)} taken events: exactly one Take It must win"


def test_issue_page_by_keyboard(server, people, twilio):
    issue = server.sms(CUSTOMER, "Do you ship to Canada?")
    ann, page = people.agent(server, "Ann Smith", "ann@e2e.test")
    web.open_issue(page, server, issue["id"])

    take = page.get_by_role("button", name="Take It")
    web.tab_to(page, take)
    page.keyboard.press("Enter")
    expect(take).to_have_count(0)
    assert server.issue(issue["id"])["assignee"]["id"] == ann["id"]

    answer = "Yes, we ship to Canada within 5 working days."
    web.tab_to(page, page.get_by_label("Reply to customer"))
    page.keyboard.type(answer)
    web.tab_to(page, page.get_by_role("button", name="Send reply"))
    page.keyboard.press("Enter")
    expect(timeline_item(page, answer)).to_be_visible()

    view = page.get_by_role("button", name="View Customer")
    web.tab_to(page, view)
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_contain_text(issue["customer"]["name"])
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert web.is_focused(view), "closing View Customer does not return focus to its button"
