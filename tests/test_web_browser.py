"""The page in a real browser (Debian's Chromium, headless, through Playwright for Python):
its microphone is Chromium's fake capture device playing the committed spoken stream
(``tests/data/spoken.flac`` as a WAV) in a loop, sent by the page's AudioWorklet over the
WebSocket at the browser's own rate.

- the page's log shows the words `kws replay` finds in that file, in its order;
- a slider moved on the page changes what fires from then on;
- a file chosen on the page gets replay's detections, drawn over its waveform;
- (``train``) your own word: a take recorded, enrolled on the tiny budget with the job's
  progress shown, and the live view switched to the new model.

Every wait is on what the page shows, bounded; the audio plays in real time, so a loop of
the file takes its 17 seconds. CI installs chromium and playwright (``make test``), so
nothing here is skipped there.
"""

from __future__ import annotations

import json

import pytest

from browser import browser, chromium, hits, served_page
from conftest import run_kws

pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e '.[test]')")
pytestmark = pytest.mark.skipif(chromium() is None, reason="chromium not installed (apt-get install chromium)")

THRESHOLD = "0.6"  # as tests/test_serve.py: every spoken word fires on the tiny model
LOOP_MS = 60_000  # a loop of the 17-s file, on a busy machine
ENROL_MS = 900_000  # a tiny enrolment, on a busy two-core machine
# Records every stage and progress value the page shows while the job runs.
FOLLOW = """() => {
  window.stages = []; window.bar = [];
  new MutationObserver(() => {
    const stage = document.getElementById("stage").textContent;
    const value = document.getElementById("progress").value;
    if (stage !== window.stages.at(-1)) window.stages.push(stage);
    if (value !== window.bar.at(-1)) window.bar.push(value);
  }).observe(document.getElementById("teach"), { subtree: true, childList: true, characterData: true,
                                                 attributes: true });
}"""
SLIDER = """([word, value]) => {
  const slider = document.getElementById(`threshold-${word}`);
  slider.value = value;
  slider.dispatchEvent(new Event("input", { bubbles: true }));
}"""
# Whether the log holds ``words`` in a row (oldest first), as one loop of the file says them.
SAID = """(words) => {
  const said = [...document.querySelectorAll("#log li.hit")].reverse().map(i => i.dataset.word).join(" ");
  return said.includes(words.join(" "));
}"""


@pytest.fixture(scope="module")
def expected(spoken, tiny_bundle):
    """The words `kws replay` finds in the spoken file, in order."""
    result = run_kws("replay", str(spoken[2]), "--model", str(tiny_bundle), "--json", "--threshold", THRESHOLD)
    words = [d["word"] for d in map(json.loads, result.stdout.splitlines()) if "word" in d]
    assert words == [w for w, _, _ in spoken[1]]
    return words


@pytest.fixture
def page_url(tiny_bundle, tmp_path):
    with served_page("--model", str(tiny_bundle), "--threshold", THRESHOLD, "--models", str(tmp_path / "models"),
                     cwd=tmp_path) as (url, _):
        yield url


def heard(page) -> float:
    """The stream seconds the page says the server has heard."""
    return float(page.get_attribute("#heard", "data-time") or 0)


def test_the_pages_log_shows_replays_words_and_a_slider_changes_what_fires(page_url, spoken, expected):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, browser(playwright, spoken[2]) as chrome:
        page = chrome.new_page()
        page.goto(page_url)
        page.click("#mic")
        page.wait_for_function(SAID, arg=expected, timeout=2 * LOOP_MS)
        assert page.get_attribute("#status", "class") in (None, "")  # no error shown

        # "yes" off: from the moment the slider moved (plus a hop in flight), no "yes" fires, the
        # others still do, for a whole loop of the file.
        moved = heard(page)
        page.evaluate(SLIDER, ["yes", "1"])
        page.wait_for_function(f"() => Number(document.getElementById('heard').dataset.time) > {moved + 18}",
                               timeout=LOOP_MS)
        after = [word for word, time in hits(page) if time > moved + 0.5]
        assert "yes" not in after and {"no", "up", "stop"} <= set(after), (moved, hits(page))


def test_a_file_chosen_on_the_page_gets_replays_detections(page_url, spoken, expected):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, browser(playwright) as chrome:
        page = chrome.new_page()
        page.goto(page_url)
        page.wait_for_selector("#threshold-yes")
        page.set_input_files("#pick", str(spoken[2]))
        page.wait_for_function("() => document.getElementById('file-status').textContent.includes('detection')",
                               timeout=LOOP_MS)
        assert [word for word, _ in hits(page, "#file-log li.hit")] == expected
        # the waveform is drawn: the canvas is not one colour
        drawn = page.evaluate("""() => {
          const c = document.getElementById('waveform');
          const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          return new Set(Array.from({length: data.length / 4}, (_, i) => data[4 * i])).size;
        }""")
        assert drawn > 2


@pytest.mark.train
@pytest.mark.espeak
def test_your_own_word_recorded_enrolled_and_listened_to(page_url, spoken):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, browser(playwright, spoken[2]) as chrome:
        page = chrome.new_page()
        page.goto(page_url)
        assert page.is_hidden("#enroll-blocker")  # the training extras are here
        page.fill("#word", "lights")
        page.dispatch_event("#word", "change")
        page.click("#record")  # starts the microphone, then the take
        page.wait_for_function("() => Number(document.getElementById('heard').dataset.time) > 2", timeout=LOOP_MS)
        assert page.evaluate("() => document.getElementById('level').value") > -60  # the meter moved
        page.click("#record")  # stop: the take is kept, with its playback
        page.wait_for_selector("#takes li audio", timeout=LOOP_MS)
        assert page.inner_text("#takes").startswith("lights-01.wav")

        page.select_option("#budget", "tiny")
        page.evaluate(FOLLOW)
        page.click("#enroll")
        page.wait_for_selector("#cancel", state="visible", timeout=LOOP_MS)  # running
        page.wait_for_selector("#cancel", state="hidden", timeout=ENROL_MS)  # over
        assert page.inner_text("#stage") == "lights: enrolled, model lights", page.inner_text("#stage")
        stages, bar = page.evaluate("() => [window.stages, window.bar]")
        job = page.evaluate("async () => (await fetch('/api/enroll')).json()")["job"]
        # The job went through enrolment's stages; the page, polling, showed some of them, in the
        # job's order (a stage shorter than a poll may pass unseen), and its bar rose through them.
        assert {"synthesizing the words", "training the head"} <= set(job["stages"]), job
        shown = [s.removeprefix("lights: ") for s in stages if s.removeprefix("lights: ") in job["stages"]]
        assert len(shown) >= 2 and shown == sorted(shown, key=job["stages"].index), (shown, job["stages"])
        assert len(bar) >= 3 and bar == sorted(bar) and bar[-1] == 1, bar
        # the live view moved to the new model: its one word, its own bar and slider
        page.wait_for_function("() => document.getElementById('status').textContent.includes('lights')",
                               timeout=LOOP_MS)
        assert page.eval_on_selector_all("#words .word", "rows => rows.map(r => r.dataset.word)") == ["lights"]
        assert page.input_value("#model") == "lights"
