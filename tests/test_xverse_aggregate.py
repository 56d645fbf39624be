"""XVerseBench arithmetic: split AVG from 2-dp metrics, Overall, and the published rows."""

from __future__ import annotations

import pytest

from micon_tasks.suites.xversebench.aggregate import bootstrap_avg_stderr, overall, pooled_mean, split_avg


def test_split_avg_reproduces_the_xverse_single_row():
    avg = split_avg({"DPG": 93.69, "ID": 79.48, "IP": 76.86, "AES": 56.84})
    assert avg == pytest.approx(76.7175)
    assert round(avg, 2) == 76.72


def test_split_avg_rounds_each_metric_to_two_decimals_first():
    # 70.364 and 70.366 print as 70.36 and 70.37: the AVG is built from the printed values
    assert split_avg({"DPG": 70.364, "ID": 70.0, "IP": 70.0, "AES": 70.0}) == pytest.approx((70.36 + 210) / 4)
    assert split_avg({"DPG": 70.366, "ID": 70.0, "IP": 70.0, "AES": 70.0}) == pytest.approx((70.37 + 210) / 4)


def test_split_avg_is_undefined_without_all_four_metrics():
    assert split_avg({"DPG": 90.0, "ID": None, "IP": 70.0, "AES": 50.0}) is None
    assert split_avg({"DPG": 90.0, "IP": 70.0, "AES": 50.0}) is None


@pytest.mark.parametrize(
    "single, multi, published",
    [
        (76.72, 70.08, 73.40),  # XVerse, XVerse paper (version A)
        (70.36, 62.73, 66.55),  # OmniGen2, XVerse paper
        (71.13, 64.38, 67.76),  # XVerse, XVerse paper (version B)
        (52.53, 49.76, 51.14),  # OmniGen2, MICON-Bench
        (47.91, 42.62, 45.26),  # BAGEL, MICON-Bench
    ],
)
def test_overall_reproduces_published_rows_within_a_hundredth(single, multi, published):
    assert abs(overall([single, multi]) - published) <= 0.01 + 1e-9


def test_overall_needs_both_splits():
    assert overall([52.53, None]) is None
    assert overall([]) is None


def test_pooled_mean_of_nothing_is_none_not_zero():
    assert pooled_mean(0.0, 0) is None
    assert pooled_mean(150.0, 3) == 50.0


def test_bootstrap_stderr_is_seeded_and_zero_for_identical_cases():
    sums = [{"DPG": 80.0, "ID": 50.0, "IP": 60.0, "AES": 55.0}] * 5
    counts = [{"DPG": 1, "ID": 1, "IP": 1, "AES": 1}] * 5
    assert bootstrap_avg_stderr(sums, counts, seed=3) == pytest.approx(0.0)
    varied = [{"DPG": 10.0 * i, "ID": 50.0, "IP": 60.0, "AES": 55.0} for i in range(6)]
    a = bootstrap_avg_stderr(varied, [counts[0]] * 6, seed=1)
    assert a is not None and a > 0 and a == bootstrap_avg_stderr(varied, [counts[0]] * 6, seed=1)
    no_id = [{"DPG": 1, "ID": 0, "IP": 1, "AES": 1}] * 6
    assert bootstrap_avg_stderr(varied, no_id) is None
