"""The web console in headless Chromium (Debian's, driven by Playwright) against the real platform with API
keys: sign in and see only that owner's objects, chat with streaming and side by side, upload a file, create a job
and watch its loss chart gain points until it succeeds, chat with the new model, delete it; the API reference;
a phone-sized screen. Screenshots of each page go to var/test-artifacts/console/."""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.conftest import BASE_MODEL
from tests.e2e.keyed.conftest import DAVE, ERIN, sdk
from tests.e2e.platform import REPO, Platform
from tests.e2e.test_fine_tuning import CODE, VALIDATION_QUESTIONS, training_file

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling Google's hosts, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = REPO / "var" / "test-artifacts" / "console"
JOB_TIMEOUT_MS = 600_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium package")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, guarded: Platform) -> Iterator[Page]:
    context = browser.new_context(base_url=guarded.url, viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.on("dialog", lambda dialog: dialog.accept())  # the delete buttons' confirmations
    yield opened
    context.close()


def sign_in(page: Page, key: str) -> None:
    page.goto("/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#nav")).to_be_visible()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_sign_in_with_a_key_shows_only_that_owners_objects(page: Page, guarded: Platform) -> None:
    sdk(guarded, ERIN).files.create(file=("erin-private.jsonl", io.BytesIO(training_file())), purpose="fine-tune")
    sdk(guarded, DAVE).files.create(file=("dave-data.jsonl", io.BytesIO(training_file())), purpose="fine-tune")
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, "sign-in")
    page.get_by_label("API key").fill("sk-wrong-key-0000")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Incorrect API key")
    sign_in(page, DAVE)
    page.goto("/#/files")
    expect(page.get_by_role("cell", name="dave-data.jsonl")).to_be_visible()
    expect(page.get_by_text("erin-private.jsonl")).to_have_count(0)
    assert page.evaluate("sessionStorage.getItem('llm-platform-key')") == DAVE
    assert page.evaluate("localStorage.length") == 0  # kept in the tab's session only
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_playground_streams_and_compares_two_models(page: Page) -> None:
    sign_in(page, DAVE)
    page.goto(f"/#/playground?model={BASE_MODEL}&compare={BASE_MODEL}")
    expect(page.locator(".column")).to_have_count(2)
    page.get_by_label("Temperature").fill("0")
    page.get_by_label("Max tokens").fill("48")
    page.get_by_label("System prompt").fill("You are a terse assistant.")
    # Counts how often the first answer's text changes: streamed, it grows token by token.
    page.evaluate(
        """() => {
        window.__updates = 0;
        new MutationObserver(() => (window.__updates += 1)).observe(document.querySelector(".columns"),
            {subtree: true, characterData: true, childList: true});
    }"""
    )
    page.get_by_placeholder("Send a message").fill("Name three colours.")
    page.get_by_role("button", name="Send").click()
    answers = page.locator(".message.assistant p")
    expect(answers).to_have_count(2)
    expect(page.locator(".stats").first).to_contain_text("tokens in", timeout=60_000)
    expect(page.locator(".stats").nth(1)).to_contain_text("tokens in", timeout=60_000)
    texts = answers.all_inner_texts()
    assert texts[0].strip() and texts[0] == texts[1]  # the same model at temperature 0, side by side
    assert page.evaluate("window.__updates") > 10
    shot(page, "playground")


def test_upload_train_watch_the_chart_chat_and_delete(page: Page, guarded: Platform, tmp_path: Path) -> None:
    sign_in(page, DAVE)
    page.goto("/#/files")
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    page.get_by_label("File", exact=True).set_input_files(str(bad))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator(".outcome .error")).to_contain_text("can't be used to fine-tune")

    good = tmp_path / "secret-code.jsonl"
    good.write_bytes(training_file())
    page.get_by_label("File", exact=True).set_input_files(str(good))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator(".outcome .ok")).to_contain_text("Uploaded secret-code.jsonl")
    assert page.locator("progress").evaluate("node => node.value") == 1
    row = page.locator("tr[data-file]", has_text="secret-code.jsonl")
    row.get_by_role("button", name="Preview").click()
    expect(page.locator("tr.preview pre").first).to_contain_text("secret code")
    shot(page, "files")
    file_id = row.get_attribute("data-file")
    validation = sdk(guarded, DAVE).files.create(
        file=("secret-valid.jsonl", io.BytesIO(training_file(VALIDATION_QUESTIONS * 3))), purpose="fine-tune"
    )

    page.goto("/#/fine-tuning")
    page.get_by_label("Training file").select_option(label=f"secret-code.jsonl ({file_id})")
    page.get_by_label("Validation file").select_option(label=f"secret-valid.jsonl ({validation.id})")
    page.get_by_label("Epochs").fill("2")
    page.get_by_label("Batch size").fill("8")
    page.get_by_label("Learning rate multiplier").fill("10")
    page.get_by_label("Suffix").fill("console")
    page.get_by_role("button", name="Create job").click()
    expect(page).to_have_url(re.compile(r"#/fine-tuning/ftjob-"))
    queued_job_buttons(page, guarded, file_id)

    # The chart gains points while the job trains: record every count it shows until the job succeeds.
    record_points = """(until) => {
        const line = document.querySelector("g.series.train");
        window.__counts = window.__counts || new Set();
        if (line) window.__counts.add(Number(line.dataset.points));
        return document.querySelector(".facts .pill")?.textContent === "succeeded" || window.__counts.has(until);
    }"""
    page.wait_for_function(record_points, arg=6, polling=250, timeout=JOB_TIMEOUT_MS)
    shot(page, "job-training")
    page.wait_for_function(record_points, arg=-1, polling=250, timeout=JOB_TIMEOUT_MS)
    counts = set(page.evaluate("[...window.__counts]"))
    expect(page.locator(".facts .pill")).to_have_text("succeeded")
    assert page.locator("g.series.train").get_attribute("data-points") == "12"
    assert len([count for count in counts if 0 < count < 12]) >= 3, counts  # seen growing, not only at the end
    assert int(page.locator("g.series.valid").get_attribute("data-points") or 0) > 0  # on the same chart
    expect(page.locator("table tbody tr")).to_have_count(2)  # a checkpoint per epoch
    shot(page, "job")

    page.get_by_role("link", name="Try it").click()
    expect(page.locator(".column")).to_have_count(2)  # the new model beside its base
    fine_tuned = page.locator(".column h2").first.inner_text()
    assert fine_tuned.startswith(f"ft:{BASE_MODEL}:dave:console:")
    page.get_by_label("Temperature").fill("0")
    page.get_by_placeholder("Send a message").fill("What is the secret code?")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".column").first.locator(".message.assistant p")).to_contain_text(CODE, timeout=60_000)
    shot(page, "playground-fine-tuned")

    page.goto("/#/models")
    model_row = page.locator(f'tr[data-model="{fine_tuned}"]')
    expect(model_row).to_contain_text("fine-tuned")
    expect(model_row).to_contain_text(BASE_MODEL)
    assert page.locator("tr", has_text=":ckpt-step-").count() >= 2  # the epochs' checkpoints, models too
    shot(page, "models")
    model_row.get_by_role("button", name="Delete").click()
    expect(model_row).to_have_count(0)
    assert fine_tuned not in {model.id for model in sdk(guarded, DAVE).models.list().data}
    assert fine_tuned not in {model.id for model in sdk(guarded, ERIN).models.list().data}


def queued_job_buttons(page: Page, guarded: Platform, file_id: str | None) -> None:
    """While the job on `page` trains, a second one waits in the queue: its page pauses, resumes and cancels it."""
    assert file_id
    queued = sdk(guarded, DAVE).fine_tuning.jobs.create(model=BASE_MODEL, training_file=file_id)
    other = page.context.new_page()  # a new tab: signed in again, its session storage is its own
    sign_in(other, DAVE)
    other.goto(f"/#/fine-tuning/{queued.id}")
    pill = other.locator(".facts .pill")
    other.get_by_role("button", name="Pause").click()
    expect(pill).to_have_text("paused")
    other.get_by_role("button", name="Resume").click()
    expect(pill).not_to_have_text("paused")
    other.get_by_role("button", name="Cancel").click()
    expect(pill).to_have_text("cancelled")
    other.close()


def test_the_api_reference_is_served_by_the_platform(page: Page) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    sign_in(page, DAVE)
    page.goto("/#/api")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=30_000)
    assert page.locator(".swagger-ui .opblock").count() > 20
    shot(page, "api")
    page.wait_for_load_state("networkidle")
    assert requested and all(url.startswith(page.url.split("/#")[0]) for url in requested), requested


def test_a_phone_sized_screen_fits_without_sideways_scrolling(browser: Browser, guarded: Platform) -> None:
    context = browser.new_context(base_url=guarded.url, viewport={"width": 390, "height": 844}, is_mobile=True)
    phone = context.new_page()
    sign_in(phone, DAVE)
    for name in ("playground", "files", "fine-tuning", "models"):
        phone.goto(f"/#/{name}")
        expect(phone.locator(f"section.page.{name}")).to_be_visible()
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390, name
        shot(phone, f"phone-{name}")
    context.close()


def test_an_open_platform_needs_no_sign_in(browser: Browser, platform: Platform) -> None:
    context = browser.new_context(base_url=platform.url)
    opened = context.new_page()
    opened.goto("/#/models")
    expect(opened.locator(f'tr[data-model="{BASE_MODEL}"]')).to_be_visible()
    expect(opened.locator("#who")).to_have_text("open platform")
    context.close()
