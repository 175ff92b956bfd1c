"""The web console in a real browser: Debian's Chromium, driven by Playwright, against one ``jobscheduler local``.

The stack is started as a user starts it (its console included); every page
is used the way a person uses it: a file picked in the form, buttons clicked,
a confirmation answered. The last run's job page is saved as docs/console.png
(the README shows it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from jobscheduler.client import Client
from jobscheduler.ui.server import ConsoleServer
from tests.support import wait_until
from tests.test_console import upstream
from tests.test_local import Stack, cli, free_port, processes_under, stop, work_files

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# As the machine's notes say Chromium must start here: no sandbox as root, no calls home.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = ROOT / "docs" / "console.png"
LIFECYCLE = ["Scheduled", "Requested", "Running", "FinishedOK", "TerminatedOK"]
WAIT_MS = 60_000


def install_command() -> str:
    """The command that installs Debian's Chromium and its driver, for this user."""
    sudo = "" if os.geteuid() == 0 else "sudo "
    return f"{sudo}apt-get update && {sudo}apt-get install -y chromium chromium-driver"


def chromium_path() -> str:
    """Debian's Chromium, or a failure (not a skip) that says how to install it."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"the console's browser tests need Debian's Chromium at {CHROMIUM}: run `{install_command()}` "
                    "(`make install` does it when run as root)", pytrace=False)
    return CHROMIUM


@pytest.fixture(scope="module")
def console_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    """``jobscheduler local --no-demo`` on free ports, its console's URL read from what it prints."""
    api_port, aws_port, console_port = free_port(), free_port(), free_port()
    log = tmp_path_factory.mktemp("console") / "stack.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            cli("local", "--no-demo", "--api-port", str(api_port), "--aws-port", str(aws_port),
                "--console-port", str(console_port)),
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        api = f"http://127.0.0.1:{api_port}"
        # The banner is printed once everything has started.
        wait_until(lambda: process.poll() is not None or "\nConsole: " in log.read_text(), "the stack starting",
                   timeout=120)
        printed = re.search(r"^Console: (\S+)$", log.read_text(), re.M)
        assert process.poll() is None and printed, log.read_text()
        assert printed.group(1) == f"http://127.0.0.1:{console_port}"
        yield Stack(api, f"http://127.0.0.1:{aws_port}", api_port, log), printed.group(1)
    finally:
        stop(process)
    assert processes_under(work_files(log.read_text())) == [], "instance processes outlived the stack"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, console_stack: tuple[Stack, str]) -> Iterator[Any]:
    """A fresh tab (its own context) that fails the test on any script error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == [], errors


def statuses_shown(page: Any) -> list[str]:
    """Every text the job page's status badge has shown since :func:`record_statuses`."""
    return list(page.evaluate("window.seenStatuses"))


def record_statuses(page: Any) -> None:
    """Record each status the badge shows (a poll may show one for a second only)."""
    page.wait_for_selector("#job-status")
    page.evaluate("""() => {
        const badge = document.querySelector('#job-status');
        window.seenStatuses = [badge.textContent];
        new MutationObserver(() => {
            if (window.seenStatuses.at(-1) !== badge.textContent) window.seenStatuses.push(badge.textContent);
        }).observe(badge, {childList: true, characterData: true, subtree: true});
    }""")


def node_classes(page: Any, state: str) -> str:
    """The class attribute of the state's node in the drawn workflow (Mermaid ids: ...-flowchart-<id>-<n>)."""
    return str(page.eval_on_selector(f"#graph g.node[id*='-flowchart-{state}-']", "node => node.getAttribute('class')"))


def test_console_schedules_a_file_and_follows_it_to_the_end(page, browser, console_stack):
    """input/env-and-command.json from the form: listed, Running then TerminatedOK, RunJob and
    TerminateInstance lit up, the output in the logs."""
    stack, console = console_stack
    received: list[Any] = []
    page.on("response", lambda response: received.append(response))
    page.goto(f"{console}/#/new")
    page.wait_for_selector("#f-image")
    page.set_input_files("#from-file", str(ROOT / "input" / "env-and-command.json"))
    page.wait_for_function("document.querySelector('#f-image').value === 'python:3.12-slim'")
    page.get_by_role("button", name="Schedule").click()
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]{36}$"))
    record_statuses(page)
    job_id = page.url.rsplit("/", 1)[1]

    listing = browser.new_page()
    listing.goto(f"{console}/#/")
    row = listing.locator(f"#jobs tr[data-job-id='{job_id}']")
    row.wait_for(timeout=WAIT_MS)
    assert row.locator("td").first.inner_text() == "greeting from env"
    assert row.locator("td").last.inner_text() == "local"  # submitted by: the local stack's caller

    page.wait_for_function("document.querySelector('#job-status').textContent === 'TerminatedOK'")
    # Live, the badge moved only forward (a poll a second apart may miss a short status) ...
    shown = statuses_shown(page)
    assert shown == [status for status in LIFECYCLE if status in shown], shown
    # ... and the page's history, from the job's record, has every status it passed, Running among them.
    page.wait_for_function("document.querySelectorAll('#history li').length === 5")
    assert page.locator("#history .status").all_inner_texts() == LIFECYCLE
    # The list updates by itself: the row turns TerminatedOK without a reload.
    listing.locator(f"#jobs tr[data-job-id='{job_id}'] .s-TerminatedOK").wait_for(timeout=WAIT_MS)
    listing.close()

    page.wait_for_function("document.querySelector('#graph').dataset.passed.includes('TerminateInstance')")
    for state in ("RunJob", "TerminateInstance"):
        assert "passed" in node_classes(page, state).split()
    assert "passed" not in node_classes(page, "MarkInterrupted").split()
    page.wait_for_function("document.querySelector('#logs').textContent.includes('hello spot capacity')")
    page.wait_for_function("document.querySelector('#cost').textContent.includes('estimated')")
    job = stack.job(job_id)
    assert job["status"] == "TerminatedOK"
    # While it ran, the job's record held its task token: none of what the page received did.
    secrets = job_secrets(stack, job)
    assert len(secrets) >= 2
    answers = [response.text() for response in received if "/api/" in response.url]
    assert [answer for answer in answers if any(secret in answer for secret in secrets)] == []
    page.set_viewport_size({"width": 1200, "height": 1800})
    page.screenshot(path=str(SCREENSHOT))


def test_console_cancels_a_job_due_in_an_hour(page, console_stack):
    """A job waiting for its time: the graph marks WaitUntilScheduled current; Keep it changes nothing;
    Cancel job (confirmed) ends it Cancelled."""
    stack, console = console_stack
    at = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    job = stack.schedule({"image": "busybox:1.36", "name": "due in an hour", "scheduledAt": at})
    page.goto(f"{console}/#/jobs/{job['jobId']}")
    page.wait_for_function("document.querySelector('#graph').dataset.current === 'WaitUntilScheduled'")
    page.wait_for_selector("#graph svg")
    assert "current" in node_classes(page, "WaitUntilScheduled").split()
    record_statuses(page)

    page.get_by_role("button", name="Cancel job…").click()
    page.get_by_role("button", name="Keep it").click()
    assert stack.job(job["jobId"])["status"] == "Scheduled"

    page.get_by_role("button", name="Cancel job…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Cancel job").click()
    page.wait_for_function("document.querySelector('#job-status').textContent === 'Cancelled'")
    assert stack.wait_terminal(job["jobId"])["status"] == "Cancelled"
    page.get_by_role("button", name="Cancel job…").wait_for(state="hidden")
    shown = statuses_shown(page)
    assert shown[shown.index("Cancelled"):] == ["Cancelled"], shown  # never back to an older read


@pytest.mark.parametrize(("field", "value"), [
    ("maxRuntimeSeconds", "0"),  # the schema's rule
    ("heartbeatSeconds", "7200"),  # the API's own rule: below maxRuntimeSeconds (3600 by default)
])
def test_console_shows_the_apis_message_by_the_field(page, console_stack, field, value):
    """A refused value: the API's message, word for word, under the field it names; nothing is scheduled."""
    stack, console = console_stack
    body = {"image": "busybox:1.36", field: int(value)}
    answer = requests.post(f"{stack.api}/jobs", json=body, timeout=30)
    assert answer.status_code == 400, answer.text
    # Ids, not whole records: a job an earlier test of this module ended may still get its last write.
    before = {j["jobId"] for j in requests.get(f"{stack.api}/jobs", timeout=30).json()["jobs"]}

    page.goto(f"{console}/#/new")
    page.get_by_label("Image").fill("busybox:1.36")
    page.locator(f"#f-{field}").fill(value)
    page.locator(f"#f-{field}").press("Enter")  # the keyboard submits the form
    message = page.locator(f"#e-{field}")
    message.wait_for()
    assert message.inner_text() == answer.json()["Message"]
    assert message.inner_text().startswith(field)
    control = page.locator(f"#f-{field}")
    assert control.get_attribute("aria-invalid") == "true"
    assert f"e-{field}" in control.get_attribute("aria-describedby").split()
    page.wait_for_function(f"document.activeElement.id === 'f-{field}'")  # focus goes to the field named
    assert re.search(r"#/new$", page.url)
    assert {j["jobId"] for j in requests.get(f"{stack.api}/jobs", timeout=30).json()["jobs"]} == before


@pytest.fixture(scope="module")
def ended_job(console_stack: tuple[Stack, str]) -> dict[str, Any]:
    """A job run to its end and costed, scheduled with the API."""
    stack, _ = console_stack
    job = stack.schedule({"image": "busybox:1.36", "name": "ended", "command": ["echo", "done"]})
    return stack.wait_for(job["jobId"], lambda j: j["status"] == "TerminatedOK" and "cost" in j)


def job_secrets(stack: Stack, job: dict[str, Any]) -> list[str]:
    """The job's callback secret (from its instance's user data) and task tokens (from its execution's history)."""
    user_data = (work_files(stack.log.read_text()) / job["instanceId"] / "user-data.sh").read_text()
    found = re.findall(r"^JS_CALLBACK_SECRET=(\S+)$", user_data, re.M)
    history = stack.client("stepfunctions").get_execution_history(
        executionArn=job["executionArn"], includeExecutionData=True, maxResults=1000)["events"]
    for event in history:
        if "taskScheduledEventDetails" in event:
            values = json.loads(event["taskScheduledEventDetails"]["parameters"]).get("ExpressionAttributeValues", {})
            found += [values[":token"]["S"]] if ":token" in values else []
    return found


def test_console_never_hands_the_page_a_secret(page, console_stack, ended_job):
    """Nothing the page receives while showing a job holds its callback secret or its task token."""
    stack, console = console_stack
    secrets = job_secrets(stack, ended_job)
    assert len(secrets) >= 2 and all(len(secret) > 20 for secret in secrets), secrets
    received: list[Any] = []
    page.on("response", lambda response: received.append(response))
    page.goto(f"{console}/#/jobs/{ended_job['jobId']}")
    page.wait_for_function("document.querySelector('#logs').textContent.includes('done')")
    page.wait_for_function("document.querySelector('#cost').textContent.includes('estimated')")
    page.goto(f"{console}/#/")
    page.locator(f"#jobs tr[data-job-id='{ended_job['jobId']}']").wait_for()
    answers = [response.text() for response in received if "/api/" in response.url]
    assert len(answers) >= 4
    for answer in answers:
        assert not [secret for secret in secrets if secret in answer]


def test_console_needs_nothing_but_itself(browser, console_stack, ended_job):
    """With every request to anything but the console refused, the pages and the drawing still load."""
    _, console = console_stack
    job = ended_job
    context = browser.new_context()
    refused: list[str] = []

    def only_console(route: Any) -> None:
        if route.request.url.startswith(console + "/"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context.route("**/*", only_console)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{console}/#/")
    page.locator(f"#jobs tr[data-job-id='{job['jobId']}']").wait_for()
    page.goto(f"{console}/#/jobs/{job['jobId']}")
    page.wait_for_selector("#graph svg g.node.passed")
    page.goto(f"{console}/#/new")
    page.wait_for_selector("#f-capacity")
    pico = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--pico-font-family')")
    context.close()
    assert refused == []
    assert pico.strip()  # Pico's stylesheet applied, from the console


@pytest.mark.parametrize(("address", "ready"), [("#/", "#status-filter"), ("#/new", "#f-maxAttempts"),
                                                ("#/jobs/ENDED", "#graph svg"), ("#/schedules", "#schedules-per-page"),
                                                ("#/schedules/new", "#f-expression")])
def test_console_is_labelled_and_fits_a_narrow_window(page, console_stack, ended_job, address, ready):
    """At a phone's width nothing scrolls sideways but inside its own box, and every control has a label."""
    _, console = console_stack
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(f"{console}/{address.replace('ENDED', ended_job['jobId'])}")
    page.wait_for_selector(ready)
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    unlabelled = page.evaluate("""[...document.querySelectorAll('main input, main select, main textarea')]
        .filter(control => !control.labels || !control.labels.length || !control.labels[0].innerText.trim())
        .map(control => control.outerHTML)""")
    assert unlabelled == []


def test_console_picks_times_in_the_chosen_time_zone(page, console_stack):
    """A wall-clock time picked in Asia/Tokyo (UTC+9, no daylight saving) reaches the API as that instant."""
    stack, console = console_stack
    tokyo = (datetime.now(UTC) + timedelta(hours=9 + 2)).replace(microsecond=0)
    page.goto(f"{console}/#/new")
    page.get_by_label("Image").fill("busybox:1.36")
    page.locator("#f-name").fill("in Tokyo time")
    page.get_by_label("Scheduled At time zone").select_option("Asia/Tokyo")
    page.locator("#f-scheduledAt").fill(tokyo.strftime("%Y-%m-%dT%H:%M:%S"))
    page.get_by_role("button", name="Schedule").click()
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]{36}$"))
    job = stack.job(page.url.rsplit("/", 1)[1])
    assert job["scheduledAt"] == (tokyo - timedelta(hours=9)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert job["name"] == "in Tokyo time"


def test_console_list_filters_and_pages(page, console_stack):
    """The status filter shows only that status; pages of 10 follow nextToken and come back, newest first."""
    stack, console = console_stack
    at = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fillers = [stack.schedule({"image": "busybox:1.36", "name": f"page filler {n}", "scheduledAt": at})
               for n in range(11)]
    assert requests.post(f"{stack.api}/jobs/{fillers[0]['jobId']}/cancel", timeout=30).status_code == 202
    everything = requests.get(f"{stack.api}/jobs", params={"limit": "100"}, timeout=30).json()["jobs"]
    page.goto(f"{console}/#/")
    page.get_by_label("Per page").select_option("10")
    rows = page.locator("#jobs tr[data-job-id]")
    page.wait_for_function("document.querySelectorAll('#jobs tr[data-job-id]').length === 10")
    first = [rows.nth(i).get_attribute("data-job-id") for i in range(10)]
    page.get_by_role("button", name="Older").click()
    page.get_by_text("Page 2").wait_for()
    page.wait_for_function(f"!document.querySelector(\"#jobs tr[data-job-id='{first[0]}']\")")
    second = [rows.nth(i).get_attribute("data-job-id") for i in range(rows.count())]
    assert first + second == [job["jobId"] for job in everything][:len(first) + len(second)]
    page.get_by_role("button", name="Newer").click()
    page.wait_for_function(f"document.querySelector(\"#jobs tr[data-job-id='{first[0]}']\")")

    page.get_by_label("Status").select_option("Cancelled")
    page.wait_for_function("[...document.querySelectorAll('#jobs tr[data-job-id] .status')].every("
                           "s => s.textContent === 'Cancelled') && document.querySelector('#jobs tr[data-job-id]')")
    cancelled = [job["jobId"] for job in everything if job["status"] == "Cancelled"]
    assert [rows.nth(i).get_attribute("data-job-id") for i in range(rows.count())] == cancelled


def create_schedule(stack: Stack, **body: Any) -> dict[str, Any]:
    """POST /schedules on the stack's API: the schedule as created."""
    answer = requests.post(f"{stack.api}/schedules", json={"job": {"image": "busybox:1.36"}, **body}, timeout=30)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def schedule_answer(stack: Stack, schedule_id: str) -> requests.Response:
    return requests.get(f"{stack.api}/schedules/{schedule_id}", timeout=30)


def shown(stamps: list[str]) -> list[str]:
    """Times as the console prints them (UTC, no zone letter)."""
    return [stamp.replace("T", " ").removesuffix("Z") for stamp in stamps]


def test_console_lists_pauses_resumes_and_deletes_a_schedule(page, console_stack):
    """A schedule made with the API is listed with its next runs; Pause, Resume and Delete (confirmed) change
    it in the API; Keep it changes nothing."""
    stack, console = console_stack
    # 03:00 in Berlin on 29 February: years apart, so nothing fires during the test.
    made = create_schedule(stack, name="leap-day report", expression="cron(0 3 29 2 ? *)", timezone="Europe/Berlin")
    schedule_id = made["scheduleId"]
    assert len(made["nextRuns"]) == 3
    page.goto(f"{console}/#/")
    page.locator("#schedules-link").click()  # the real API's OpenAPI document has /schedules
    row = page.locator(f"#schedules tr[data-schedule-id='{schedule_id}']")
    row.wait_for()
    cells = row.locator("td")
    assert cells.nth(0).inner_text().startswith("leap-day report")
    assert "cron(0 3 29 2 ? *)" in cells.nth(1).inner_text() and "Europe/Berlin" in cells.nth(1).inner_text()
    assert cells.nth(2).inner_text() == "enabled"
    assert cells.nth(3).locator("li").all_inner_texts() == shown(made["nextRuns"])
    assert cells.nth(4).inner_text() == "none yet" and cells.nth(5).inner_text() == "0"

    page.get_by_role("button", name="Pause leap-day report").click()
    wait_until(lambda: schedule_answer(stack, schedule_id).json()["enabled"] is False, "the API saying paused")
    row.locator(".s-paused").wait_for()
    assert cells.nth(3).inner_text() == "-"  # a paused schedule has no next runs
    page.get_by_role("button", name="Resume leap-day report").click()
    wait_until(lambda: schedule_answer(stack, schedule_id).json()["enabled"] is True, "the API saying enabled")
    page.wait_for_function(f"document.querySelectorAll(\"tr[data-schedule-id='{schedule_id}'] td:nth-child(4) li\")"
                           ".length === 3")

    page.get_by_role("button", name="Delete leap-day report…").click()
    page.get_by_role("button", name="Keep it").click()
    assert schedule_answer(stack, schedule_id).status_code == 200
    page.get_by_role("button", name="Delete leap-day report…").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete schedule").click()
    row.wait_for(state="detached")
    assert schedule_answer(stack, schedule_id).status_code == 404


def test_console_links_a_schedules_recent_jobs(page, console_stack):
    """A schedule that fired once: its job is listed by the schedule, in its status's colour, linked to its page."""
    stack, console = console_stack
    before = datetime.now(UTC).replace(microsecond=0)
    # A rate fires at its creation, then every period: ending before the second firing, it makes one job.
    made = create_schedule(stack, name="fires once", expression="rate(1 minute)",
                           endAt=(before + timedelta(seconds=40)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                           job={"image": "busybox:1.36", "command": ["echo", "from the schedule"]})
    page.goto(f"{console}/#/schedules")
    link = page.locator(f"#schedules tr[data-schedule-id='{made['scheduleId']}'] a")
    link.wait_for()  # the page refreshes itself: the job appears once the firing has made it
    (job,) = schedule_answer(stack, made["scheduleId"]).json()["lastJobs"]
    assert before <= datetime.fromisoformat(job["scheduledAt"]) <= datetime.now(UTC)
    page.locator(f"#schedules tr[data-schedule-id='{made['scheduleId']}'] a .s-TerminatedOK").wait_for()
    assert link.get_attribute("href") == f"#/jobs/{job['jobId']}"
    link.press("Enter")  # keyboard-usable
    page.wait_for_url(re.compile(rf"#/jobs/{job['jobId']}$"))
    page.wait_for_selector("#job-status")
    page.wait_for_function("document.querySelector('#job-status').textContent === 'TerminatedOK'")
    page.wait_for_function("document.querySelector('#logs').textContent.includes('from the schedule')")


def test_console_pages_schedules(page, console_stack):
    """Pages of 10 schedules follow nextToken, newest first, and come back."""
    stack, console = console_stack
    for n in range(11):
        create_schedule(stack, name=f"page filler {n}", expression="rate(1 day)", enabled=False)
    everything = requests.get(f"{stack.api}/schedules", params={"limit": "100"}, timeout=30).json()["schedules"]
    page.goto(f"{console}/#/schedules")
    page.get_by_label("Per page").select_option("10")
    rows = page.locator("#schedules tr[data-schedule-id]")
    page.wait_for_function("document.querySelectorAll('#schedules tr[data-schedule-id]').length === 10")
    first = [rows.nth(i).get_attribute("data-schedule-id") for i in range(10)]
    page.get_by_role("button", name="Older").click()
    page.get_by_text("Page 2").wait_for()
    page.wait_for_function(f"!document.querySelector(\"#schedules tr[data-schedule-id='{first[0]}']\")")
    second = [rows.nth(i).get_attribute("data-schedule-id") for i in range(rows.count())]
    assert second and first + second == [s["scheduleId"] for s in everything][:len(first) + len(second)]
    page.get_by_role("button", name="Newer").click()
    page.wait_for_function(f"document.querySelector(\"#schedules tr[data-schedule-id='{first[0]}']\")")


def test_console_creates_a_schedule_showing_the_apis_message_by_the_field(page, console_stack):
    """New schedule: a job file picked before the form has loaded fills the job; a refused expression, then a
    refused job field, each show the API's message under the field it names (nothing created); corrected, the
    schedule is created as filled in."""
    stack, console = console_stack
    job = json.loads((ROOT / "input" / "nightly.json").read_text())
    refusals = ({"expression": "cron(0 2 * * * *)", "job": job},  # both day fields set
                {"expression": "cron(0 2 * * ? *)", "job": {**job, "maxRuntimeSeconds": 0}})
    messages = [requests.post(f"{stack.api}/schedules", json=body, timeout=30).json()["Message"] for body in refusals]
    assert messages[0].startswith("expression: ") and messages[1].startswith("job.maxRuntimeSeconds: "), messages
    before = requests.get(f"{stack.api}/schedules", params={"limit": "100"}, timeout=30).json()["schedules"]

    # The file is picked while the form's schema is still on its way (held here): it fills the job once it comes.
    page.goto(f"{console}/#/schedules")
    page.locator("#schedules-link").wait_for()  # shown once the console's own look at the schema is done
    held: list[Any] = []
    page.route("**/api/openapi.json", lambda route: held.append(route))
    page.get_by_role("button", name="New schedule").click()
    for _ in range(WAIT_MS // 20):
        if held:
            break
        page.wait_for_timeout(20)  # lets Playwright hand over the held request
    assert held, "the form never asked for the schema"
    page.set_input_files("#from-file", str(ROOT / "input" / "nightly.json"))
    assert page.locator("[id='f-job.image']").count() == 0
    held[0].continue_()
    page.wait_for_function("document.getElementById('f-job.image')?.value === 'busybox:1.36'")
    page.locator("#f-name").fill("nightly from the console")  # the schedule's (the job's is f-job.name)
    page.get_by_label("Timezone").select_option("Europe/Berlin")
    page.get_by_label("Enabled").select_option("false")  # paused: nothing fires during the test
    for field, refusal, message in zip(("expression", "job.maxRuntimeSeconds"), refusals, messages, strict=True):
        page.get_by_label("Expression").fill(refusal["expression"])
        page.get_by_label("Max Runtime Seconds").fill(str(refusal["job"]["maxRuntimeSeconds"]))
        page.get_by_role("button", name="Create schedule").click()
        shown_message = page.locator(f"[id='e-{field}']")
        shown_message.wait_for()
        assert shown_message.inner_text() == message
        assert page.locator(f"[id='f-{field}']").get_attribute("aria-invalid") == "true"
        page.wait_for_function(f"document.activeElement.id === 'f-{field}'")
    assert requests.get(f"{stack.api}/schedules", params={"limit": "100"}, timeout=30).json()["schedules"] == before

    page.get_by_label("Max Runtime Seconds").fill("900")
    page.get_by_label("Retry").fill("attempts=2\nonExitCodes=3, 4")  # typed by the schema: numbers, a list
    page.get_by_role("button", name="Create schedule").click()
    page.wait_for_url(re.compile(r"#/schedules$"))
    (made,) = [s for s in requests.get(f"{stack.api}/schedules", timeout=30).json()["schedules"]
               if s["name"] == "nightly from the console"]
    page.locator(f"#schedules tr[data-schedule-id='{made['scheduleId']}']").wait_for()
    assert (made["expression"], made["timezone"], made["enabled"]) == ("cron(0 2 * * ? *)", "Europe/Berlin", False)
    assert made["job"] == {**job, "retry": {"attempts": 2, "onExitCodes": [3, 4]}}


def test_console_shows_no_schedules_link_when_the_api_has_none(browser, upstream):
    """An API whose OpenAPI document has no /schedules gets no Schedules link (the stack's API has them, so an
    API that answers what the test sets stands in for an older one)."""
    server = ConsoleServer(Client(upstream.url), free_port())
    server.start()
    page = browser.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        upstream.routes = {"/openapi.json": (200, {"paths": {"/jobs": {}}, "components": {"schemas": {"Status": {}}}}),
                           "/jobs": (200, {"jobs": [], "nextToken": None})}
        page.goto(f"{server.url}/#/")
        page.wait_for_function("Alpine.$data(document.body).checked")
        assert page.locator("#schedules-link").is_hidden()
    finally:
        page.close()
        server.stop()
