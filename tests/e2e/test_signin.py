"""Signing in (SPEC §9): the printed sign-in link, choosing a password,
signing in with it, and Sign out ending the session."""

import re

from playwright.sync_api import expect

import harness
import web


def test_sign_in_link_then_password_then_sign_out(server, people):
    # The first admin's link, as `serve` printed it on stdout.
    page = people.page()
    web.choose_password(page, server.admin_link)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile(r"^Notifications"))).to_be_visible()
    expect(page.get_by_role("link", name="Issues")).to_be_visible()
    expect(page.get_by_role("link", name="Settings")).to_be_visible()
    for admin_link in ("Staff", "Rejected", "Broadcasts"):
        expect(page.get_by_role("link", name=admin_link)).to_be_visible()

    # The link is single use.
    other = people.page()
    other.goto(server.admin_link)
    expect(other.get_by_role("button", name="Set password")).to_have_count(0)

    # Sign out ends the session: going back to / lands on /login.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login"))
    page.goto(server.base + "/")
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()

    # A wrong password is one generic sentence; the chosen one signs in.
    web.sign_in(page, server.base, "admin@localhost", "not the password at all")
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    web.sign_in(page, server.base, "admin@localhost", harness.PASSWORD)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page).not_to_have_url(re.compile(r"/login"))


def test_invited_agent_sees_no_admin_links(server, people):
    # Staff added over the API, invited with `switchboard staff invite`.
    _, page = people.agent(server, "Ann Agent", "ann@e2e.test")
    expect(page.get_by_role("main")).to_be_visible()
    expect(page.locator("header, nav").get_by_text("Ann Agent").first).to_be_visible()
    for admin_link in ("Staff", "Rejected", "Broadcasts"):
        expect(page.get_by_role("link", name=admin_link, exact=True)).to_have_count(0)
