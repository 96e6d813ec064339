"""The report's pages as a person sees them: the real CLI writes them from a hand-made JUnit XML
of the sample inventory's hosts, Debian's headless Chromium opens them from disk (file:// only,
no network), takes a screenshot, prints to PDF, and the test reads what the page says."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from test_report import SAMPLE, SHARED, TOTTORI, YONAGO, _all_pass, _case, _junit

CHROMIUM = Path("/usr/bin/chromium")
WIDTH, HEIGHT = 1240, 1754  # A4's proportions, as a browser window

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (/usr/bin/chromium); scripts/install.sh "
           "installs it",
)


def _municloud(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("municloud")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "municloud.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, check=False)


def _chromium(tmp_path: Path, page: Path, *options: str) -> str:
    assert page.is_file()
    done = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", *options, page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pages of a run where 米子市 failed one SSH setting and everything else passed."""
    tmp = tmp_path_factory.mktemp("report")
    junit = _junit(tmp, *_all_pass(),
                   _case("test_sshd_setting_in_force", YONAGO, "baseline.ssh.hardened", "failed"),
                   _case("test_sshd_setting_in_force", TOTTORI, "baseline.ssh.hardened"),
                   _case("test_clock_shows_jst", SHARED, "baseline.time.jst", "skipped"))
    out = tmp / "pages"
    done = _municloud("report", "--inventory", str(SAMPLE), str(junit), "--out", str(out))
    assert done.returncode == 1, done.stdout + done.stderr  # one failure
    assert f"pages: {out / 'index.html'}" in done.stdout
    return out


def test_screenshot_of_a_municipality_page(pages: Path, tmp_path: Path) -> None:
    shot = tmp_path / "312029.png"
    _chromium(tmp_path, pages / "312029.html", f"--screenshot={shot}",
              f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars")
    with Image.open(shot) as image:
        assert image.size == (WIDTH, HEIGHT)
        # not blank: text in several colours (black, red for the failure, green for passes)
        colours = image.convert("RGB").getcolors(WIDTH * HEIGHT) or []
        assert len(colours) > 100
        assert any(r > 150 and g < 60 and b < 60 for _, (r, g, b) in colours)  # 不合格, red


def test_the_page_says_who_what_and_how_many(pages: Path, tmp_path: Path) -> None:
    dom = _chromium(tmp_path, pages / "312029.html", "--dump-dom")
    assert "<title>米子市 受入試験結果" in dom
    assert "SSHサーバの設定強化" in dom  # the clause that failed, by its Japanese title
    counts = dict(re.findall(r'id="count-([a-z_]+)">(\d+)<', dom))
    assert counts == {"passed": "2", "failed": "1", "waived": "0", "skipped": "0",
                      "manual": "5", "expired_waivers": "0"}


def test_printed_on_a4_with_the_japanese_text(pages: Path, tmp_path: Path) -> None:
    pdf = tmp_path / "312029.pdf"
    _chromium(tmp_path, pages / "312029.html", f"--print-to-pdf={pdf}",
              "--no-pdf-header-footer")
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    assert re.search(r"Page size:.*\(A4\)", info.stdout), info.stdout
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "米子市 受入試験結果" in text
    assert "管理者認証は鍵認証のみ" in text
    assert "手動確認" in text and "確認者・日付・結果" in text.replace("\n", "").replace(" ", "")


def test_the_prefecture_page_links_every_municipality(pages: Path, tmp_path: Path) -> None:
    dom = _chromium(tmp_path, pages / "index.html", "--dump-dom")
    assert "鳥取県" in dom
    for code, name in (("310000", "鳥取県"), ("312011", "鳥取市"), ("312029", "米子市"),
                       ("312037", "倉吉市")):
        assert re.search(rf'<a href="{code}\.html">{name}</a>', dom), code
        assert f'href="{code}.json"' in dom
    totals = dict(re.findall(r'id="total-([a-z_]+)">(\d+)<', dom))
    assert (totals["passed"], totals["failed"], totals["skipped"]) == ("9", "1", "1")


def test_pdf_tools_are_there() -> None:
    """pdfinfo and pdftotext come with poppler-utils, which scripts/install.sh installs."""
    assert shutil.which("pdfinfo") and shutil.which("pdftotext")
