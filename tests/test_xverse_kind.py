"""The `metrics` scoring kind: pooled means across cases, failures and errors counted, the suite block."""

from __future__ import annotations

import pytest

import registry
from micon_tasks.errors import ConfigError
from micon_tasks.task import load_task
from micon_tasks.types import JudgeResult, Verdict

KIND = registry.scoring_kinds.get("metrics")


@pytest.fixture(scope="module")
def single():
    return load_task("xversebench_single", "sample")


@pytest.fixture(scope="module")
def multi():
    return load_task("xversebench_multi", "sample")


def scored(cid, value, note=None):
    return Verdict(cid, "scored", rationale=note, value=value)


def result(*verdicts, aes_on="grid", notes=()):
    return JudgeResult(verdicts=list(verdicts), details={"aes_on": aes_on, "notes": list(notes)})


def test_card_options_are_checked():
    KIND.check_options({"metrics": ["dpg", "aes"]}, task="t")
    with pytest.raises(ConfigError, match="'t'.*metrics"):
        KIND.check_options({"metrics": ["clip"]}, task="t")
    with pytest.raises(ConfigError, match="takes metrics"):
        KIND.check_options({"weights": [1]}, task="t")


def test_the_split_is_declared_once_by_dataset_name(single, multi):
    """The split the task reads and the split its scores are filed under cannot disagree: there is one
    declaration (the card's dataset_name), and a second one in scoring is refused."""
    for task, split in ((single, "single"), (multi, "multi")):
        assert task.config.dataset_name == split and task.split == split
        assert "split" not in task.config.scoring.options
        assert task.data_location["split"] == split
        assert KIND.summarise_task(task, [], seed=0)["split"] == split
    with pytest.raises(ConfigError, match=r"'t', field 'scoring.split'.*dataset_name"):
        KIND.check_options({"metrics": ["dpg"], "split": "multi"}, task="t")


def test_entries_pool_over_cases_not_case_means(single):
    # case A: one human reference, two images: ID 90 and 0 (no face); case B: one ID entry of 30
    a = KIND.score_case(single, result(scored("ID/0/RA", 90.0), scored("ID/1/RA", 0.0, "no face"),
                                       scored("DPG/0", 100.0), scored("DPG/1", 50.0), scored("AES/grid", 60.0)),
                        case_id="single_000")
    b = KIND.score_case(single, result(scored("ID/0/RA", 30.0), scored("DPG/0", 25.0), scored("AES/grid", 40.0),
                                       scored("IP/0/RA", 70.0)), case_id="single_001")
    assert a.dimensions == {"DPG": 75.0, "ID": 45.0, "AES": 60.0} and a.clean and a.extra["no_face"] == 1
    block = KIND.summarise_task(single, [a, b], seed=0)
    assert block["metrics"]["ID"] == pytest.approx(40.0)  # (90 + 0 + 30) / 3, not mean(45, 30)
    assert block["metrics"]["DPG"] == pytest.approx(175 / 3)
    assert block["metrics"]["IP"] == 70.0 and block["metrics"]["AES"] == 50.0
    assert block["avg"] == pytest.approx((round(175 / 3, 2) + 40 + 70 + 50) / 4)
    assert block["score"] == block["avg"]
    assert block["counts"]["no_face"] == 1 and block["entries"] == {"DPG": 3, "ID": 3, "IP": 1, "AES": 2}
    assert block["aes_on"] == ["grid"] and block["stderr"] is not None


def test_an_error_entry_is_left_out_and_counted(single):
    s = KIND.score_case(single, result(scored("DPG/0", 80.0), Verdict("DPG/1", "error", error="vqa down"),
                                       scored("ID/0/RA", 50.0), scored("IP/0/RA", 0.0, "no object found"),
                                       scored("AES/grid", 55.0)), case_id="single_000")
    assert s.dimensions["DPG"] == 80.0 and s.n_checkpoint_errors == 1 and not s.clean
    block = KIND.summarise_task(single, [s], seed=0)
    assert block["metrics"]["DPG"] == 80.0 and block["counts"]["errors"]["DPG"] == 1
    assert block["counts"]["no_object"] == 1 and block["n_checkpoint_errors"] == 1


def test_a_failed_case_scores_zero_on_every_entry_it_owed(multi):
    s = KIND.score_case(multi, None, case_id="multi_002", failure_reason="generation failed: refused")
    # human + animal + object references, 4 images (the card), AES on the 2x2 grid
    assert s.extra["counts"] == {"DPG": 4, "ID": 4, "IP": 8, "AES": 1} and s.failed and s.score == 0.0
    ok = KIND.score_case(multi, result(scored("DPG/0", 100.0), scored("ID/0/RA", 80.0), scored("IP/0/RB", 60.0),
                                       scored("AES/grid", 50.0)), case_id="multi_000")
    block = KIND.summarise_task(multi, [s, ok], seed=0)
    assert block["metrics"]["DPG"] == pytest.approx(20.0) and block["metrics"]["IP"] == pytest.approx(60 / 9)
    assert block["n_failed"] == 1 and block["counts"]["failed"] == 1
    with pytest.raises(ValueError, match="failure_reason"):
        KIND.score_case(multi, None, case_id="multi_000")
    multi.num_images = 1  # the runner sets this run's count (--num_images 1): one image, AES per image
    try:
        one = KIND.score_case(multi, None, case_id="multi_002", failure_reason="generation failed: refused")
    finally:
        multi.num_images = multi.config.num_images
    assert one.extra["counts"] == {"DPG": 1, "ID": 1, "IP": 2, "AES": 1}


def test_malformed_entries_are_refused_with_the_case(single):
    with pytest.raises(ValueError, match="single_000.*METRIC/image"):
        KIND.score_case(single, result(scored("A_check_1", 1.0)), case_id="single_000")
    with pytest.raises(ValueError, match="status 'pass'"):
        KIND.score_case(single, result(Verdict("DPG/0", "pass")), case_id="single_000")
    with pytest.raises(ValueError, match="no number"):
        KIND.score_case(single, result(Verdict("DPG/0", "scored")), case_id="single_000")


def test_a_case_scored_twice_is_refused_naming_it(single):
    s = KIND.score_case(single, result(scored("DPG/0", 80.0)), case_id="single_000")
    with pytest.raises(ValueError, match="'xversebench_single': case 'single_000' is scored twice"):
        KIND.summarise_task(single, [s, s], seed=0)


def _block(kind_task, dpg, id_, ip, aes, aes_on="grid", notes=()):
    s = KIND.score_case(kind_task, result(scored("DPG/0", dpg), scored("ID/0/RA", id_), scored("IP/0/RB", ip),
                                          scored("AES/grid", aes), aes_on=aes_on, notes=notes),
                        case_id=kind_task.case_ids[0])
    return KIND.summarise_task(kind_task, [s], seed=0), s


def test_suite_reproduces_the_published_xverse_row(single, multi):
    bs, ss = _block(single, 93.69, 79.48, 76.86, 56.84)
    bm, sm = _block(multi, 88.26, 66.59, 71.48, 53.97)
    suite = registry.suites.get("xversebench")
    out = KIND.summarise_suite(suite, {"xversebench_single": bs, "xversebench_multi": bm},
                               {"xversebench_single": [ss], "xversebench_multi": [sm]}, seed=0)
    assert round(bs["avg"], 2) == 76.72 and round(bm["avg"], 2) == 70.08
    assert out["headline"]["name"] == "Overall" and abs(out["headline"]["value"] - 73.40) <= 0.01
    assert out["table"]["columns"][:5] == ["DPG (single)", "ID (single)", "IP (single)", "AES (single)", "AVG (single)"]
    assert out["table"]["columns"][-1] == "Overall" and len(out["table"]["rows"][0]) == 11
    md = KIND.markdown(out, model="xverse")
    assert "| xverse | 93.69 | 79.48 | 76.86 | 56.84 | 76.72 | 88.26 |" in md
    assert "no face" in md and "per image" not in md


def test_one_split_alone_has_no_overall_and_per_image_aes_is_flagged(single):
    bs, ss = _block(single, 90, 80, 70, 60, aes_on="image", notes=["DPG answered by a VLM judge: not comparable"])
    out = KIND.summarise_suite(registry.suites.get("xversebench"), {"xversebench_single": bs},
                               {"xversebench_single": [ss]}, seed=0)
    assert out["headline"]["name"] == "AVG (single)" and out["headline"]["value"] == pytest.approx(75.0)
    md = KIND.markdown(out, model="m")
    assert "AES scored per image" in md and "Overall needs both splits" in md and "not comparable" in md
