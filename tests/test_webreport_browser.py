"""The report in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

No browser is downloaded: Playwright launches the system executable (``$MICON_CHROMIUM``, else
``chromium`` on PATH). These tests fail, never skip, when the browser or Playwright is missing:
`.ci/run` installs both. The screenshot lands in ``$MICON_TEST_ARTEFACTS`` (default ``out/test-artefacts``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import test_webreport_helpers as h

from micon_tasks.webreport import build_report

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ARTEFACTS = Path(os.environ.get("MICON_TEST_ARTEFACTS") or ROOT / "out" / "test-artefacts")


def _chromium() -> str:
    path = os.environ.get("MICON_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("no Chromium: install Debian's `chromium` package (apt-get install -y chromium) or set "
                    "MICON_CHROMIUM to a Chromium executable; .ci/run installs it")
    return path


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright's Python package is missing: pip install -e '.[report]'")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    runs = h.make_runs(tmp_path_factory.mktemp("runs"))
    summary = build_report([runs["base"], runs["other"]], tmp_path_factory.mktemp("report") / "rep")
    return {"runs": runs, "index": summary.index}


@pytest.fixture(scope="module")
def page(browser, report):
    pg = browser.new_page(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    errors: list[str] = []
    pg.on("request", lambda r: requests.append(r.url))
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(report["index"].as_uri())
    pg.wait_for_selector("body[data-ready='1']", timeout=30_000)
    pg.wait_for_selector("body[data-compare-done]", timeout=30_000)
    pg.evaluate("() => Promise.all(Array.from(document.images).map(i => { i.loading = 'eager'; return i.decode().catch(() => null); }))")
    yield {"page": pg, "requests": requests, "errors": errors}
    pg.close()


def test_page_renders_without_errors_or_network(page):
    assert page["errors"] == []
    assert page["requests"] and all(u.startswith("file://") for u in page["requests"]), \
        [u for u in page["requests"] if not u.startswith("file://")]
    assert any(u.endswith("chart.umd.min.js") for u in page["requests"])
    assert page["page"].locator("canvas#chart-tasks").bounding_box()["height"] > 100


def test_scores_tables_equal_results_json(page, report):
    pg = page["page"]
    for i, name in enumerate(("base", "other")):
        res = json.loads((report["runs"][name] / "results.json").read_text())
        cells = pg.locator(f"table.scores-table[data-run='{i}'] td[data-key]")
        assert cells.count() == 8  # six tasks, Avg, Macro avg
        for j in range(cells.count()):
            key, value, text = cells.nth(j).get_attribute("data-key"), cells.nth(j).get_attribute("data-value"), cells.nth(j).inner_text()
            section, field, *rest = key.split(".")
            expected = res["benchmark"][field] if section == "benchmark" else res["results"][field]["score"]
            assert float(value) == expected and text == f"{expected:.2f}"


def _visible_ids(pg) -> list[tuple[str, str, str]]:
    return pg.evaluate("() => Array.from(document.querySelectorAll('#cards .card:not([hidden])'))"
                       ".map(c => [c.dataset.run, c.dataset.task, c.dataset.id])")


def test_gallery_has_one_card_per_case_and_filters_hide_the_right_ones(page, report):
    pg = page["page"]
    base, other = h.records(report["runs"]["base"]), h.records(report["runs"]["other"])
    assert pg.locator("#cards .card").count() == len(base) + len(other)
    assert len(_visible_ids(pg)) == len(base) + len(other)

    pg.select_option("#f-run", "0")
    pg.select_option("#f-task", "story_generation")
    assert _visible_ids(pg) == [["0", r["task"], r["case_id"]] for r in base if r["task"] == "story_generation"]

    pg.select_option("#f-task", "")
    pg.select_option("#f-status", "failed")
    assert _visible_ids(pg) == [["0", "object_composition", h.FAILED_CASE]]

    pg.select_option("#f-status", "")
    from micon_tasks.task import load_task

    dims = {t: {c.id: c.dimension for c in load_task(t, "sample").checkpoints} for t in {r["task"] for r in base}}
    failing = {r["case_id"]: {dims[r["task"]][v["checkpoint_id"]] for v in r["judge"]["verdicts"] if v["status"] != "pass"}
               if r["judge"] else set(r["score"]["dimensions"]) for r in base}
    # a dimension that fails in some cases but not all, so the filter has something to hide and to show
    dim = next(d for d in "ABCDEFG" if 0 < sum(d in f for f in failing.values()) < len(base))
    pg.select_option("#f-dim", dim)
    assert _visible_ids(pg) == [["0", r["task"], r["case_id"]] for r in base if dim in failing[r["case_id"]]]

    pg.select_option("#f-dim", "")
    pg.fill("#f-min", "50")
    assert sorted(x[2] for x in _visible_ids(pg)) == sorted(r["case_id"] for r in base if r["score"]["score"] >= 50)
    pg.fill("#f-min", "")
    pg.fill("#f-search", "0001")
    assert {x[2] for x in _visible_ids(pg)} == {r["case_id"] for r in base if "0001" in r["case_id"]}
    pg.fill("#f-search", "")
    pg.select_option("#f-run", "")
    assert len(_visible_ids(pg)) == len(base) + len(other)


def test_run_against_run_list_is_ordered_by_score_change(page, report):
    pg = page["page"]
    base = {(r["task"], r["case_id"]): r["score"]["score"] for r in h.records(report["runs"]["base"])}
    other = {(r["task"], r["case_id"]): r["score"]["score"] for r in h.records(report["runs"]["other"])}
    rows = pg.evaluate("() => Array.from(document.querySelectorAll('#compare-list .cmp')).map(e => [e.dataset.k, Number(e.dataset.delta)])")
    assert len(rows) == len(base)
    deltas = [d for _, d in rows]
    assert deltas == sorted(deltas, reverse=True)
    for k, d in rows:
        task, cid = k.split("/", 1)
        assert d == pytest.approx(other[(task, cid)] - base[(task, cid)])
    first = pg.locator("#compare-list .cmp").first
    assert first.locator("p.flip").count() == (1 if cmp_flips(report, rows[0][0]) else 0)
    first.locator("details.cpl summary").first.click()  # the checkpoint list is built when opened
    first.locator("details.cpl ul.cps").first.wait_for()  # (the toggle event comes a moment after the click)
    highlighted = first.locator("li.cp.flip").evaluate_all("els => els.map(e => e.dataset.cp)")
    assert sorted(highlighted) == sorted(cmp_flips(report, rows[0][0]))
    pg.select_option("#c-order", "loss")
    pg.wait_for_selector("body[data-compare-done]")
    deltas = pg.evaluate("() => Array.from(document.querySelectorAll('#compare-list .cmp')).map(e => Number(e.dataset.delta))")
    assert deltas == sorted(deltas)
    pg.select_option("#c-order", "gain")


def cmp_flips(report, key: str) -> list[str]:
    """Checkpoint ids whose verdict differs between the two runs for one case."""
    task, cid = key.split("/", 1)
    a, b = ({v["checkpoint_id"]: v["status"] for r in h.records(report["runs"][n]) if (r["task"], r["case_id"]) == (task, cid)
             for v in (r["judge"] or {}).get("verdicts", [])} for n in ("base", "other"))
    return [k for k in a if a[k] != b.get(k)]


def test_full_size_view_and_screenshots(page, browser, report):
    pg = page["page"]
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTEFACTS / "report_scores.png"))
    pg.locator("#gallery").scroll_into_view_if_needed()
    pg.evaluate("() => document.getElementById('gallery').scrollIntoView()")
    pg.screenshot(path=str(ARTEFACTS / "report_gallery.png"))
    pg.locator("#cards .card figure.gen img").first.click()
    assert pg.locator("#viewer").evaluate("d => d.open")
    assert pg.locator("#viewer-img").evaluate("i => i.complete && i.naturalWidth > 0")
    pg.keyboard.press("Escape")
    dark = browser.new_page(viewport={"width": 1280, "height": 900}, color_scheme="dark")
    dark.goto(report["index"].as_uri())
    dark.wait_for_selector("body[data-ready='1']")
    bg = dark.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert bg != "rgb(255, 255, 255)"
    dark.screenshot(path=str(ARTEFACTS / "report_dark.png"))
    dark.close()
    assert (ARTEFACTS / "report_gallery.png").stat().st_size > 10_000


def test_a_missing_browser_fails_the_tests_instead_of_skipping_them(monkeypatch, tmp_path):
    monkeypatch.delenv("MICON_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no chromium on PATH
    with pytest.raises(pytest.fail.Exception, match="no Chromium"):
        _chromium()
