"""The report in a real browser: headless Chromium (Debian's ``chromium``; skipped when it is not installed).

Each page is loaded from disk with console logging on: any console message (a script error, a blocked
resource, a Content-Security-Policy refusal, a missing file) fails the test. The DOM after the scripts ran
shows that they did run (under the page's CSP, from file://) and did their work, and screenshots are saved.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from pokedata.report import ReportConfig, build_report
from pokedata.report.tiles import class_key
from tests.helpers.report_data import EVIL_TAGS, make_dataset

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)"
    ),
]
CONSOLE = re.compile(r":CONSOLE[:(\]]")


def chromium(tmp: Path, url: str, *args: str) -> tuple[str, list[str]]:
    """(stdout, console lines) of one headless run."""
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
        f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000",
        *args, url,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    console = [line for line in proc.stderr.splitlines() if CONSOLE.search(line)]
    return proc.stdout, console


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    root = make_dataset(tmp / "ds")
    out = tmp / "report"
    build_report(ReportConfig(data=root, out=out, workers=1))
    return out


def test_pages_load_without_console_messages_and_scripts_work(report, tmp_path):
    pika = report / "class" / f"{class_key('Pikachu')}.html"
    pages = {
        "index": report / "index.html",
        "classes": report / "classes.html",
        "conflicts": report / "conflicts.html",
        "quarantine": report / "quarantine.html",
    }
    for name, path in pages.items():
        dom, console = chromium(tmp_path, path.as_uri(), "--dump-dom")
        assert console == [], f"{name}: {console}"
        assert 'class="js"' in dom, f"{name}: report.js did not run"
    dom, console = chromium(tmp_path, (report / "classes.html").as_uri() + "?q=pika", "--dump-dom")
    assert console == [] and "1 of 4" in dom  # the filter ran on ?q=
    dom, console = chromium(tmp_path, pika.as_uri() + "#img-1", "--dump-dom")
    assert console == []
    panel = re.search(r'<aside id="info"[^>]*>(.*?)</aside>', dom, re.S)
    assert panel and "hidden" not in panel.group(0).split(">")[0], "the provenance panel did not open"
    assert "<dt>tags</dt>" in panel.group(1)
    assert "pikachu &lt;img src=x onerror=" in panel.group(1) and "<img src=x" not in dom  # text, not markup
    assert EVIL_TAGS.split()[0] in panel.group(1)


def test_screenshots_of_the_overview_and_a_class_page(report, tmp_path):
    shots = {
        "overview": report / "index.html",
        "class": report / "class" / f"{class_key('Pikachu')}.html",
    }
    for name, page in shots.items():
        png = tmp_path / f"{name}.png"
        _dom, console = chromium(tmp_path, page.as_uri(), f"--screenshot={png}", "--window-size=1200,900")
        assert console == [], f"{name}: {console}"
        with Image.open(png) as im:
            assert im.size == (1200, 900)
            assert max(ImageStat.Stat(im.convert("L")).stddev) > 10, f"{name}: blank screenshot"
