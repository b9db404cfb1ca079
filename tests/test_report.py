"""The listening report: its rows and links, and the page in a real headless Chromium."""

from __future__ import annotations

import functools
import html.parser
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest
import soundfile as sf

from clarity.cad2.enhance import run_enhance
from clarity.cad2.evaluate import run_evaluate
from clarity.cad2.testing import SCENE_LISTENERS

PAIRS = [(scene, listener) for scene, listeners in SCENE_LISTENERS.items()
         for listener in listeners]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


class ReportParser(html.parser.HTMLParser):
    """Rows of the pairs table (cell texts) and every audio source and image of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.audio: list[str] = []
        self.images: list[str] = []
        self.rows: list[list[str]] = []
        self._table = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "table":
            self._table = attributes.get("id")
        elif tag == "tr" and self._table == "pairs":
            self.rows.append([])
        elif tag == "td" and self._table == "pairs":
            self._cell = []
        elif tag == "audio":
            self.audio.append(attributes["src"])
        elif tag == "img":
            self.images.append(attributes["src"])

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture
def evaluated(mini_dataset, tmp_path, recipe_overrides, recipe_config):
    """An evaluated oracle run with its passthrough bound, references saved; its exp folder."""
    exp = tmp_path / "exp"
    bound = exp / "passthrough_noncausal"
    common = ("evaluate.save_references=true", f"evaluate.plot_bounds.passthrough={bound}",
              f"evaluate.plot_bounds.oracle={exp / 'oracle_noncausal'}")
    passthrough = recipe_config(recipe_overrides(mini_dataset, bound, "passthrough", *common))
    run_enhance(passthrough)
    run_evaluate(passthrough)
    config = recipe_config(recipe_overrides(mini_dataset, exp, "oracle", *common))
    run_enhance(config)
    run_evaluate(config)
    return exp


def test_report_lists_every_pair_with_players_for_files_in_the_folder(evaluated):
    parser = ReportParser()
    parser.feed((evaluated / "report.html").read_text(encoding="utf-8"))
    body = [row for row in parser.rows if row]
    assert sorted((row[0], row[2]) for row in body) == sorted(PAIRS)
    assert len(parser.audio) == 3 * len(PAIRS)
    for link in parser.audio + parser.images:
        assert not link.startswith(("/", "http:", "https:", "file:")), link
        path = (evaluated / link).resolve()
        assert path.is_file() and evaluated.resolve() in path.parents, link
    for link in parser.audio:
        info = sf.info(str(evaluated / link))
        assert (info.samplerate, info.channels) == (32000, 2)
    gains = {row[0]: row[4] for row in body}
    assert gains["S50001"] == "Violin_1 +3, Violin_2 +6, Cello -10"
    passthrough_column = [row[8] for row in body]
    assert all(float(value) > 0 for value in passthrough_column)
    page = (evaluated / "report.html").read_text(encoding="utf-8")
    assert "<p>Separator: type oracle.</p>" in page


def _serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/report.html"


AUDIO_STATES = """
const done = arguments[arguments.length - 1];
const players = Array.from(document.querySelectorAll("audio"));
Promise.all(players.map(player => new Promise(resolve => {
  const settle = () => resolve({
    src: player.currentSrc, ready: player.readyState, duration: player.duration,
    error: player.error && player.error.code,
  });
  if (player.readyState >= 1 || player.error) { settle(); return; }
  player.addEventListener("loadedmetadata", settle, {once: true});
  player.addEventListener("error", settle, {once: true});
  player.load();
}))).then(done);
"""


@pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("CI"),
    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
)
def test_report_page_in_headless_chromium(evaluated):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    server, url = _serve(evaluated)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_script_timeout(60)
        driver.get(url)
        states = driver.execute_async_script(AUDIO_STATES)
        assert len(states) == 3 * len(PAIRS)
        for state in states:
            assert state["error"] is None and state["ready"] >= 1, state
            assert state["duration"] == pytest.approx(3.0, abs=0.01), state
        image_ok = driver.execute_script(
            "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
        )
        assert image_ok
        header = driver.find_elements(By.CSS_SELECTOR, "#pairs th.sortable")[7]  # mean HAAQI
        header.click()
        values = [float(cell.get_attribute("data-value")) for cell in driver.find_elements(
            By.CSS_SELECTOR, "#pairs tbody tr td:nth-child(8)")]
        assert values == sorted(values, reverse=True) and len(values) == len(PAIRS)
        header.click()
        values = [float(cell.get_attribute("data-value")) for cell in driver.find_elements(
            By.CSS_SELECTOR, "#pairs tbody tr td:nth-child(8)")]
        assert values == sorted(values)
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
    finally:
        driver.quit()
        server.shutdown()
