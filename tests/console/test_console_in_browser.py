"""The console in a real headless Chromium on the `make dev` demo: sign-in link, the demo people as loaded
faces, every page without script errors and without serious or critical axe-core violations, the reports'
charts, a split then a merge in the review queue moving the report's unique visitors, roles, staff enrolment
from a photo, a device's credentials, and identity's /docs with the network cut. A screenshot of each page
goes to .browser/screenshots/ (git-ignored: faces)."""

import base64
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.console.conftest import AXE, SCREENSHOTS, TENANT, DemoStack

BLOCKING_IMPACTS = {"serious", "critical"}


class Watched:
    """A page whose script errors and console errors are collected, to be asserted empty."""

    def __init__(self, page: Page) -> None:
        self.page, self.errors = page, list[str]()
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on(
            "console",
            lambda message: (
                self.errors.append(f"console {message.type}: {message.text}") if message.type == "error" else None
            ),
        )


@pytest.fixture
def signed_in(chromium: Browser, demo: DemoStack) -> Iterator[Watched]:
    """A browser signed in as the demo's admin through the sign-in link, as `make dev` prints it."""
    context: BrowserContext = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = Watched(context.new_page())
    token = demo.make_token(TENANT, ["admin", "analyst"], subject="console-test")
    page.page.goto(f"{demo.console_url}/#token={token}")
    page.page.wait_for_url(f"{demo.console_url}/persons")
    yield page
    context.close()


def visit(watched: Watched, url: str, name: str) -> Page:
    page = watched.page
    response = page.goto(url)
    assert response is not None and response.status == 200, f"{url}: {response and response.status}"
    page.wait_for_load_state("networkidle")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    return page


def axe_violations(page: Page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    violations: list[dict] = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map(n => n.target.join(' ')).slice(0, 3)}))"""
    )
    return [v for v in violations if v["impact"] in BLOCKING_IMPACTS]


def loaded_faces(page: Page, selector: str) -> list[int]:
    """naturalWidth of every image matched, once each has finished loading (0 is a broken image)."""
    page.wait_for_function(f"() => [...document.querySelectorAll({selector!r})].every(image => image.complete)")
    widths: list[int] = page.eval_on_selector_all(selector, "images => images.map(image => image.naturalWidth)")
    return widths


def person_ids(demo: DemoStack) -> list[dict]:
    persons = httpx.get(demo.url("identity", "/v1/persons"), headers=demo.admin(), timeout=10).json()["items"]
    return sorted(persons, key=lambda p: p["first_seen_at"])


def test_sign_in_link_shows_the_demo_people_as_loaded_faces(signed_in: Watched, demo: DemoStack) -> None:
    page = visit(signed_in, f"{demo.console_url}/persons", "persons")
    assert "#token" not in page.url  # the token left the address bar
    widths = loaded_faces(page, ".gallery img")
    assert len(widths) == demo.people == 11
    assert all(width > 0 for width in widths), widths
    expect(page.locator("header .who")).to_contain_text(f"tenant {TENANT}")
    (session,) = page.context.cookies()
    assert (session["name"], session["httpOnly"], session["sameSite"]) == ("revisit_session", True, "Strict")
    assert signed_in.errors == []


def test_every_page_draws_without_script_errors_and_passes_axe(signed_in: Watched, demo: DemoStack) -> None:
    person = person_ids(demo)[0]["person_id"]
    pages = {
        "persons": "/persons",
        "person": f"/persons/{person}",
        "erase-confirmation": f"/persons/{person}/erase",
        "review": "/review",
        "reports": "/reports",
        "staff": "/staff",
        "sites": "/sites",
        "cameras": "/cameras",
        "devices": "/devices",
        "audit": "/audit",
    }
    problems = {}
    for name, path in pages.items():
        page = visit(signed_in, f"{demo.console_url}{path}", name)
        if blocking := axe_violations(page):
            problems[name] = blocking
    assert problems == {}
    assert signed_in.errors == []
    expect(signed_in.page.locator("#chain-status")).to_have_text("Intact")  # the audit page, last visited


def test_pages_are_usable_by_keyboard(signed_in: Watched, demo: DemoStack) -> None:
    """The first Tab reaches the skip link, which moves focus to the content; the navigation follows in order."""
    page = visit(signed_in, f"{demo.console_url}/reports", "reports-keyboard")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('href')") == "/persons"
    page.keyboard.press("Enter")
    page.wait_for_url(f"{demo.console_url}/persons")


def test_sign_in_page_passes_axe_and_refuses_a_bad_token(chromium: Browser, demo: DemoStack) -> None:
    context = chromium.new_context()
    watched = Watched(context.new_page())
    page = visit(watched, f"{demo.console_url}/signin", "signin")
    assert axe_violations(page) == []
    page.fill("#token", "not-a-token")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("the token was refused")
    page.fill("#token", demo.make_token(TENANT, ["device"]))
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("the console is for people")
    page.goto(f"{demo.console_url}/persons")
    assert page.url.startswith(f"{demo.console_url}/signin")  # no session: back to sign-in
    assert watched.errors == []
    context.close()


def test_reports_page_draws_its_charts(signed_in: Watched, demo: DemoStack) -> None:
    page = visit(signed_in, f"{demo.console_url}/reports", "reports")
    charts = page.locator("svg[role=img]")
    expect(charts).to_have_count(4)
    for index in range(4):
        assert charts.nth(index).locator("rect").count() > 0, charts.nth(index).inner_html()[:500]
    expect(page.locator("#unique-visitors")).to_have_text(str(demo.people))
    expect(page.locator("#visits")).to_have_text(str(demo.people + demo.returning))
    assert demo.returning == 7
    href = page.locator("text=visitors per day (CSV)").get_attribute("href")
    csv = page.request.get(f"{demo.console_url}{href}")
    assert csv.ok and csv.text().splitlines()[0].startswith("period_start,visits,unique_visitors")
    assert signed_in.errors == []


def test_viewer_sees_no_change_buttons(chromium: Browser, demo: DemoStack) -> None:
    context = chromium.new_context()
    watched = Watched(context.new_page())
    watched.page.goto(f"{demo.console_url}/#token={demo.make_token(TENANT, ['viewer'])}")
    watched.page.wait_for_url(f"{demo.console_url}/persons")
    person = person_ids(demo)[0]["person_id"]
    page = visit(watched, f"{demo.console_url}/persons/{person}", "person-as-viewer")
    assert page.locator("form[method=post] button").filter(has_not_text="Sign out").count() == 0
    assert page.locator("input[type=checkbox]").count() == 0
    for path in ("/sites", "/cameras", "/devices", "/staff"):
        page = visit(watched, f"{demo.console_url}{path}", f"{path[1:]}-as-viewer")
        assert page.locator("main form[method=post]").count() == 0, path
    page = visit(watched, f"{demo.console_url}/review", "review-as-viewer")
    expect(page.locator("main")).to_contain_text("for admins and analysts")
    assert watched.errors == []
    context.close()


def test_staff_enrolment_from_a_photo(signed_in: Watched, demo: DemoStack, shared: Path) -> None:
    page = visit(signed_in, f"{demo.console_url}/staff", "staff")
    photo = sorted((shared / "faces" / "obama").iterdir())[0]
    page.fill("#staff_id", "greeter-1")
    page.fill("#display_name", "Greeter")
    page.set_input_files("#photos", str(photo))
    page.click("button:text-is('Enrol')")
    expect(page.locator(".notice")).to_contain_text("enrolled greeter-1: 1 face vectors")
    page.fill("#remove_id", "greeter-1")
    page.click("button:text-is('Remove from the gallery')")
    expect(page.locator(".notice")).to_contain_text("removed greeter-1")
    assert signed_in.errors == []


def test_device_created_with_its_credentials_then_revoked(signed_in: Watched, demo: DemoStack) -> None:
    page = visit(signed_in, f"{demo.console_url}/devices", "devices")
    page.fill("#device_id", "door-box")
    page.check("#cam-entrance")
    page.click("button:text-is('Create and show its credentials')")
    link = page.locator("#download-credentials")
    href = link.get_attribute("href") or ""
    assert href.startswith("data:text/plain;base64,") and link.get_attribute("download") == "door-box.creds"
    assert "BEGIN NATS USER JWT" in base64.b64decode(href.split(",", 1)[1]).decode()
    page.screenshot(path=str(SCREENSHOTS / "device-created.png"), full_page=True)
    page = visit(signed_in, f"{demo.console_url}/devices", "devices-after")
    page.click("button[aria-label='Revoke device door-box']")
    expect(page.locator(".notice")).to_contain_text("device door-box revoked")
    assert signed_in.errors == []


def test_console_and_identity_docs_work_with_the_network_cut(chromium: Browser, demo: DemoStack) -> None:
    """Every request outside this machine is refused: the console's pages and the services' /docs still work."""
    context = chromium.new_context()
    outside: list[str] = []

    def only_this_machine(route) -> None:  # type: ignore[no-untyped-def]
        if re.match(r"https?://127\.0\.0\.1[:/]", route.request.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_machine)
    watched = Watched(context.new_page())
    watched.page.goto(f"{demo.console_url}/#token={demo.make_token(TENANT, ['admin'])}")
    watched.page.wait_for_url(f"{demo.console_url}/persons")
    assert all(width > 0 for width in loaded_faces(watched.page, ".gallery img"))
    visit(watched, f"{demo.console_url}/reports", "reports-offline")
    page = visit(watched, demo.url("identity", "/docs"), "identity-docs")
    expect(page.locator(".opblock").first).to_be_visible(timeout=15000)
    assert page.locator(".opblock").count() > 10
    assert outside == [] and watched.errors == []
    context.close()


def wait_for_operation(page: Page, timeout: float = 90) -> None:
    """Reload the operation's page until every service has done its step."""
    deadline = time.monotonic() + timeout
    while page.locator("#operation-status").inner_text() != "completed" and time.monotonic() < deadline:
        time.sleep(0.5)
        page.reload()
    assert page.locator("#operation-status").inner_text() == "completed"


def unique_visitors_shown(page: Page, console_url: str, expected: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    page.goto(f"{console_url}/reports")
    while page.locator("#unique-visitors").inner_text() != str(expected) and time.monotonic() < deadline:
        time.sleep(0.5)
        page.reload()
    assert page.locator("#unique-visitors").inner_text() == str(expected)


def test_split_then_merge_in_the_review_queue_moves_unique_visitors(signed_in: Watched, demo: DemoStack) -> None:
    """A returning person split in two is two unique visitors; the review queue suggests them side by side, and
    merging them there brings the report back. Undoing that merge splits them again."""
    page = signed_in.page
    returning = next(p for p in person_ids(demo) if p["sightings"] >= 2)
    visit(signed_in, f"{demo.console_url}/persons/{returning['person_id']}", "person-before-split")
    assert loaded_faces(page, ".timeline img") and all(w > 0 for w in loaded_faces(page, ".timeline img"))
    page.locator("input[name=sighting_ids]").first.check()  # the newest sighting: day two
    page.click("button:text-is('Split the selected sightings into a new person')")
    wait_for_operation(page)
    unique_visitors_shown(page, demo.console_url, demo.people + 1)

    page = visit(signed_in, f"{demo.console_url}/review?min_similarity=0.4", "review")
    pair = page.locator("section.pair").filter(has=page.locator(f"a[href='/persons/{returning['person_id']}']"))
    expect(pair).to_have_count(1)
    assert all(width > 0 for width in loaded_faces(page, "section.pair img"))
    pair.locator("button:text-is('Merge')").click()
    wait_for_operation(page)
    page.screenshot(path=str(SCREENSHOTS / "operation-merge.png"), full_page=True)
    merge_page = page.url
    unique_visitors_shown(page, demo.console_url, demo.people)

    page.goto(merge_page)
    page.click("button:text-is('Undo this merge')")
    wait_for_operation(page)
    unique_visitors_shown(page, demo.console_url, demo.people + 1)
    assert signed_in.errors == []
