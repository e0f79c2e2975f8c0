"""Browser-side helpers: people signing in, and what every page is checked for.

Everything is found the way a person finds it, by role and accessible name
(SPEC §9 fixes the labels), never by CSS class or element id, so the tests
hold whatever markup the page uses. The few places that look at the DOM
directly (scroll width, focus style, injected elements) say why.

Each person gets their own browser context (own cookies), like two people
at two desks. Every page records the dialogs it opened (alert/confirm/
prompt), its console messages and uncaught errors, so a test can assert that
customer text never ran as script.
"""

import os
import re

from playwright.sync_api import expect

import harness

SCREENSHOTS = os.path.join(harness.ROOT, "docs", "screenshots")


class People:
    def __init__(self, browser):
        self.browser = browser
        self.contexts = []
        self.dialogs = []  # (page url, dialog type, message)
        self.console = []  # "type: text" lines, all pages
        self.page_errors = []

    def context(self, **options):
        ctx = self.browser.new_context(**options)
        ctx.set_default_timeout(10000)
        ctx.on("page", self._watch)
        self.contexts.append(ctx)
        return ctx

    def page(self, **options):
        return self.context(**options).new_page()

    def _watch(self, page):
        def on_dialog(d):
            self.dialogs.append((page.url, d.type, d.message))
            d.dismiss()

        page.on("dialog", on_dialog)
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))

    def csp_violations(self):
        return [line for line in self.console if "Content Security Policy" in line]

    def welcome(self, server, link, **options):
        """Opens an invite link in a fresh context and chooses a password;
        returns the page, signed in on the tracker."""
        page = self.page(**options)
        choose_password(page, link)
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        return page

    def admin(self, server, **options):
        """The first admin, through the sign-in link `serve` printed."""
        return self.welcome(server, server.admin_link, **options)

    def agent(self, server, name, email, role="agent", **options):
        """A new staff member (API), invited (CLI), welcomed (browser)."""
        person = server.add_staff(name, email, role)
        page = self.welcome(server, server.invite(email), **options)
        return person, page

    def close(self):
        for ctx in self.contexts:
            ctx.close()


def choose_password(page, link, password=harness.PASSWORD):
    page.goto(link)
    page.get_by_label("New password").fill(password)
    page.get_by_label("Repeat password").fill(password)
    page.get_by_role("button", name="Set password").click()


def sign_in(page, base, email, password=harness.PASSWORD):
    page.goto(base + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def open_issue(page, server, issue_id):
    page.goto(f"{server.base}/issues/{issue_id}")
    expect(page.get_by_role("heading", name=re.compile(rf"#{issue_id}\b")).first).to_be_visible()


def tab(page, label):
    """A tracker tab: a link whose name starts with its label (then its count)."""
    return page.get_by_role("link", name=re.compile(rf"^\s*{label}\b"))


def row_link(page, issue_id):
    """The tracker row's link to an issue (rows link to /issues/{id}, SPEC §9)."""
    return page.get_by_role("main").locator(f'a[href$="/issues/{issue_id}"]').first


def no_sideways_scroll(page):
    """[document width, viewport width]: a document wider than the viewport
    is what a person sees as a sideways scroll."""
    return page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")


def focus_style(locator):
    """What makes focus visible: outline, ring (box-shadow), border,
    background, underline, on the element or a close ancestor (a row may
    light up as a whole with :focus-within when its link has focus)."""
    return locator.evaluate(
        """el => { const out = [];
                   for (let e = el, i = 0; e && i < 4; e = e.parentElement, i++) {
                     const s = getComputedStyle(e);
                     out.push([s.outlineStyle, s.outlineWidth, s.outlineColor, s.boxShadow,
                               s.borderColor, s.backgroundColor, s.textDecorationLine].join(' '));
                   }
                   return out.join(' || '); }"""
    )


def is_focused(locator):
    return locator.evaluate("e => e === document.activeElement")


def tab_to(page, locator, limit=80):
    """Presses Tab until `locator` has focus, as a keyboard user would, and
    checks the focus is visible: the element is :focus-visible and looks
    different from itself unfocused. Returns how many presses it took."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if is_focused(locator):
            break
    else:
        raise AssertionError(f"{limit} presses of Tab never reached {locator}")
    assert locator.evaluate("e => e.matches(':focus-visible')"), f"{locator} focus is not :focus-visible"
    focused = focus_style(locator)
    locator.evaluate("e => e.blur()")
    unfocused = focus_style(locator)
    locator.focus()
    assert focused != unfocused, f"{locator} shows no focus indicator ({focused})"
    return presses


def screenshot(page, name, full_page=False):
    os.makedirs(SCREENSHOTS, exist_ok=True)
    if full_page:
        # A page may scroll itself (to the New messages line); a sticky top
        # bar would then be photographed in the middle of a full page.
        page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=os.path.join(SCREENSHOTS, name), full_page=full_page)
