"""``micon report`` without a browser: what the page embeds, bad input, missing pieces, the thumbnail cache.

The runs are real (collage on the sample, a loopback fake judge); the browser checks are in
test_webreport_browser.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import test_runner_helpers as th
import test_webreport_helpers as h

from micon_tasks.cli import main
from micon_tasks.webreport import ReportInputError, build_report
from micon_tasks.webreport.compare import compare_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return h.make_runs(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def built(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "rep"
    summary = build_report([runs["base"], runs["other"]], out)
    return {"summary": summary, "data": h.embedded_data(summary.index), "out": out}


def _copy(run: Path, dest: Path) -> Path:
    target = dest / run.parent.name / run.name
    shutil.copytree(run, target)
    return target


def test_scores_are_results_json_numbers(runs, built):
    data = built["data"]
    for i, name in enumerate(("base", "other")):
        res = json.loads((runs[name] / "results.json").read_text())
        table = data["runs"][i]["scores"]["tables"][0]
        assert table["title"] == "MICON-Bench"
        assert table["columns"][1:7] == ["Object", "Spatial", "Attribute", "Component", "FG/BG", "Story"]
        row, keys = table["rows"][0], table["keys"][0]
        for value, key in zip(row, keys):
            if key:
                section, *rest = key.split(".")
                expected = res["benchmark"][rest[0]] if section == "benchmark" else res["results"][rest[0]]["score"]
                assert value == expected
        assert row[-1] == f"{res['benchmark']['n_cases'] - res['benchmark']['n_cases_clean']}/{res['benchmark']['n_cases']}"
        assert table["headline"]["stderr"] == res["benchmark"]["avg_stderr"]
        assert table["headline"]["clean"] == res["benchmark"]["avg_clean"]
        details = {d["task"]: d for d in data["runs"][i]["scores"]["details"]}
        assert details["story_generation"]["stderr"] == res["results"]["story_generation"]["stderr"]
        prov = dict(data["runs"][i]["scores"]["provenance"])
        assert prov["Judge"]["model"] == f"judge-{name}" and prov["Seed"] == 0 and prov["DAR"] == "off"
        assert "checkpoints" in prov["Judge templates (sha256)"]
        assert prov["Data"]["story_generation"].startswith("sample: ")


def test_one_card_per_record_with_images_verdicts_and_references(runs, built):
    data = built["data"]
    recs = h.records(runs["base"])
    cards = data["runs"][0]["cards"]
    assert [(c["t"], c["id"]) for c in cards] == [(r["task"], r["case_id"]) for r in recs]
    out = built["out"]
    for card, rec in zip(cards, recs):
        assert card["s"] == rec["score"]["score"]
        shared = data["cases"][card["k"]]
        assert [r["label"] for r in shared["refs"]] == [r["role"] for r in rec["refs"]]
        assert all((out / r["th"]).is_file() for r in shared["refs"])
        if rec["image"]:
            assert len(card["imgs"]) == 1 and (out / card["imgs"][0]["th"]).is_file()
            assert (out / card["imgs"][0]["full"]).resolve() == (runs["base"] / rec["image"]["path"]).resolve()
            assert [v["st"] for v in card["v"]] == [v["status"] for v in rec["judge"]["verdicts"]]
            assert card["v"][0]["r"].startswith("base says")
    failed = next(c for c in cards if c["id"] == h.FAILED_CASE)
    assert failed["imgs"] == [] and "refused" in failed["fail"] and failed["s"] == 0.0
    story = next(c for c in cards if c["t"] == "story_generation")
    assert story["ans"]["status"] == "pass" and story["ans"]["reason"] == "base answer"
    capped = [c for c in cards if c["caps"]]
    assert capped, "some hard checkpoint fails with these verdicts"
    cps = data["tasks"][capped[0]["t"]]["cps"]
    assert all(cps[x["id"]][2] for x in capped[0]["caps"])  # only hard checkpoints cap


def test_run_against_run_is_ordered_by_score_change_with_flips(runs, built):
    cmp = built["data"]["compare"][0]
    base = {(r["task"], r["case_id"]): r for r in h.records(runs["base"])}
    other = {(r["task"], r["case_id"]): r for r in h.records(runs["other"])}
    assert cmp["same_cases"] and cmp["n_common"] == len(base)
    deltas = [row["delta"] for row in cmp["rows"]]
    assert deltas == sorted(deltas, reverse=True)
    row = cmp["rows"][0]
    a, b = base[(row["t"], row["id"])], other[(row["t"], row["id"])]
    assert row["delta"] == pytest.approx(b["score"]["score"] - a["score"]["score"])
    va = {v["checkpoint_id"]: v["status"] for v in a["judge"]["verdicts"]}
    vb = {v["checkpoint_id"]: v["status"] for v in b["judge"]["verdicts"]}
    assert {f[0] for f in row["flips"]} == {k for k in va if va[k] != vb[k]}
    assert cmp["n_flipped"] > 0
    res_a = json.loads((runs["base"] / "results.json").read_text())
    assert cmp["tasks"]["spatial_composition"]["a"] == pytest.approx(res_a["results"]["spatial_composition"]["score"])


def test_different_case_sets_are_compared_on_the_intersection():
    card = lambda k, s, v: {"k": k, "t": k.split("/")[0], "id": k.split("/")[1], "s": s, "d": {"A": s / 100},  # noqa: E731
                            "v": [{"id": "A_check_1", "st": v}]}
    base = [card("t/1", 50.0, "pass"), card("t/2", 10.0, "fail"), card("t/3", 70.0, "pass")]
    other = [card("t/2", 90.0, "pass"), card("t/3", 40.0, "pass"), card("t/4", 0.0, "fail")]
    cmp = compare_runs(base, other)
    assert cmp["n_common"] == 2 and cmp["only_a"] == ["t/1"] and cmp["only_b"] == ["t/4"] and not cmp["same_cases"]
    assert [r["k"] for r in cmp["rows"]] == ["t/2", "t/3"]
    assert cmp["rows"][0]["flips"] == [["A_check_1", "fail", "pass"]] and cmp["rows"][1]["flips"] == []
    assert cmp["tasks"]["t"] == {"a": 40.0, "b": 65.0, "delta": 25.0, "n": 2}
    assert cmp["dims"]["A"]["delta"] == pytest.approx(0.25)


def test_not_a_run_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "-o", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("micon: error:") and "no micon run" in err
    assert main(["report", str(tmp_path / "nope"), "-o", str(tmp_path / "rep")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "rep").exists()


def test_a_folder_holding_other_files_is_not_overwritten(runs, tmp_path):
    (tmp_path / "precious.txt").write_text("keep")
    with pytest.raises(ReportInputError, match="not empty"):
        build_report([runs["base"]], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]


def test_missing_images_records_and_data_are_said_where_they_are_missing(runs, tmp_path):
    run = _copy(runs["base"], tmp_path)
    recs = h.records(run)
    gone = next(r for r in recs if r["image"] and r["task"] == "spatial_composition")
    (run / gone["image"]["path"]).unlink()
    (run / "samples_fgbg_composition.jsonl").unlink()
    res = json.loads((run / "results.json").read_text())
    res["tasks"]["attribute_disentanglement"]["dataset"] = {"kind": "folder", "location": str(tmp_path / "gone")}
    res["tasks"]["story_generation"]["checkpoints_sha256"] = "0" * 16  # as if the set changed since the run
    (run / "results.json").write_text(json.dumps(res))
    lines = (run / "samples_component_transfer.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    rec["image"]["path"] = "../../../etc/passwd"
    lines[0] = json.dumps(rec)
    (run / "samples_component_transfer.jsonl").write_text("\n".join(lines) + "\n")
    summary = build_report([run], tmp_path / "rep")
    data = h.embedded_data(summary.index)
    cards = {c["id"]: c for c in data["runs"][0]["cards"]}
    assert cards[gone["case_id"]]["imgs"] == []
    assert any("image file missing" in n and gone["image"]["path"] in n for n in cards[gone["case_id"]]["notes"])
    assert any("outside the run folder" in n for n in cards[rec["case_id"]]["notes"])
    assert any("samples_fgbg_composition.jsonl is missing" in n for n in data["runs"][0]["task_notices"]["fgbg_composition"])
    assert "checkpoint set changed since this run" in data["tasks"]["story_generation"]["note"]
    assert "note" not in data["tasks"]["object_composition"]
    attr = [c for c in data["runs"][0]["cards"] if c["t"] == "attribute_disentanglement"]
    assert attr and all("is not there any more" in data["cases"][c["k"]]["refs_note"] for c in attr)
    assert any(n.startswith("task attribute_disentanglement: references unavailable") for n in data["notices"])


def test_dar_maps_several_images_and_other_suites_are_shown(runs, tmp_path):
    run = _copy(runs["base"], tmp_path)
    path = run / "samples_object_composition.jsonl"
    lines = path.read_text().splitlines()
    first, second = json.loads(lines[0]), json.loads(lines[1])
    (run / "maps" / "object_composition" / first["case_id"]).mkdir(parents=True)
    shutil.copyfile(run / first["image"]["path"], run / "maps" / "object_composition" / first["case_id"] / "RA.png")
    extra = first["image"]["path"].replace(".png", "__1.png")  # num_images = 2: image 1 beside image 0
    shutil.copyfile(run / first["image"]["path"], run / extra)
    first["images"] = [first["image"], {**first["image"], "path": extra, "sha256": "0" * 64}]
    first["dar_maps"] = {"RA": {"png": f"maps/object_composition/{first['case_id']}/RA.png",
                                "npz": f"maps/object_composition/{first['case_id']}/RA.npz", "grid": [4, 4]}}
    second["dar_maps"] = {"unavailable": "the adapter exposes no attention"}
    path.write_text("\n".join([json.dumps(first), json.dumps(second), *lines[2:]]) + "\n")
    res = json.loads((run / "results.json").read_text())
    res["suites"] = {"omnicontext": {"kind": "rubric", "title": "OmniContext", "tasks": ["omni_single"],
                                     "headline": {"name": "Overall", "value": 5.5, "stderr": 0.2}, "views": {"PF": 6.0},
                                     "counts": {"n_cases": 3}, "table": {"columns": ["Overall"], "rows": [[5.5]]}}}
    (run / "results.json").write_text(json.dumps(res))
    data = h.embedded_data(build_report([run], tmp_path / "rep").index)
    cards = {c["id"]: c for c in data["runs"][0]["cards"]}
    maps = cards[first["case_id"]]["maps"]["maps"]
    assert maps[0]["label"] == "RA" and maps[0]["grid"] == [4, 4] and (tmp_path / "rep" / maps[0]["th"]).is_file()
    assert cards[second["case_id"]]["maps"] == {"unavailable": "the adapter exposes no attention"}
    imgs = cards[first["case_id"]]["imgs"]
    assert [i["label"] for i in imgs] == ["#0", "#1"] and "note" not in imgs[0]
    assert "differs from the one the run recorded" in imgs[1]["note"]  # its recorded sha256 is wrong
    titles = [t["title"] for t in data["runs"][0]["scores"]["tables"]]
    assert titles == ["MICON-Bench", "OmniContext"]
    suite = data["runs"][0]["scores"]["tables"][1]
    assert suite["columns"] == ["Model", "Overall"] and suite["rows"] == [[data["runs"][0]["name"], 5.5]]
    assert suite["views"] == {"PF": {"value": 6.0, "stderr": None}}


def test_thumbnails_are_made_once(runs, built):
    again = build_report([runs["base"], runs["other"]], built["out"])
    assert built["summary"].n_thumbs_made > 0 and again.n_thumbs_made == 0
    assert h.embedded_data(again.index)["runs"][0]["cards"] == built["data"]["runs"][0]["cards"]
    thumbs = list((built["out"] / "assets" / "thumbs").glob("*.webp"))
    assert len(thumbs) == built["summary"].n_thumbs_made  # one per distinct image; no leftovers


def test_max_cases_limits_each_task(runs, tmp_path):
    data = h.embedded_data(build_report([runs["base"]], tmp_path / "rep", max_cases=1).index)
    tasks = [c["t"] for c in data["runs"][0]["cards"]]
    assert len(tasks) == 6 == len(set(tasks)) and data["max_cases"] == 1


def test_nothing_is_written_outside_the_report_folder(runs, tmp_path):
    """A subprocess with its own HOME, caches and working folder: all of them stay empty, the runs unchanged."""
    before = {k: h.tree_state(v) for k, v in runs.items()}
    home = tmp_path / "home"
    cwd = tmp_path / "cwd"
    for p in (home, cwd):
        p.mkdir()
    env = th.subprocess_env(HOME=str(home), MICON_CACHE_DIR=str(home / "micon"), HF_HOME=str(home / "hf"),
                            XDG_CACHE_HOME=str(home / "xdg"), TMPDIR=str(home))
    res = subprocess.run([th.PYTHON, "-m", "micon_tasks", "report", str(runs["base"]), str(runs["other"]),
                          "-o", str(tmp_path / "rep")], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "report:" in res.stdout and (tmp_path / "rep" / "index.html").is_file()
    assert list(home.iterdir()) == [] and list(cwd.iterdir()) == []
    assert {k: h.tree_state(v) for k, v in runs.items()} == before


def test_references_from_a_published_folder_and_an_uncached_hub_dataset(runs, tmp_path):
    """Parquet references are shown from their bytes; a Hub dataset is read from the local cache only."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import registry

    run = _copy(runs["base"], tmp_path)
    recs = [r for r in h.records(run) if r["task"] == "object_composition"]
    sample = registry.get_task("object_composition").config
    pub = tmp_path / "pub" / "data" / sample.config_name
    pub.mkdir(parents=True)
    rows = []
    for r in recs:
        roles = [x["role"] for x in r["refs"]]
        files = [Path(__file__).resolve().parents[1] / "micon_tasks" / "sample" / "object_composition" / "refs"
                 / f"{r['case_id']}_{role}.png" for role in roles]
        rows.append({"case_id": r["case_id"], "ref_roles": roles, "prompt": "from parquet", "goal": "parquet goal",
                     "refs": [{"bytes": f.read_bytes(), "path": f.name} for f in files]})
    pq.write_table(pa.Table.from_pylist(rows), pub / "test-00000.parquet")
    res = json.loads((run / "results.json").read_text())
    res["tasks"]["object_composition"]["dataset"] = {"kind": "folder", "location": str(tmp_path / "pub")}
    res["tasks"]["story_generation"]["dataset"] = {"kind": "hub", "location": "nobody/not-cached", "revision": None}
    (run / "results.json").write_text(json.dumps(res))
    data = h.embedded_data(build_report([run], tmp_path / "rep").index)
    for r in recs:
        shared = data["cases"][f"object_composition/{r['case_id']}"]
        assert [x["label"] for x in shared["refs"]] == [x["role"] for x in r["refs"]]
        assert all((tmp_path / "rep" / x["th"]).is_file() and "full" not in x for x in shared["refs"])
        assert shared["goal"] == "parquet goal"
    story = [k for k in data["cases"] if k.startswith("story_generation/")]
    assert story and all("not in the local Hub cache" in data["cases"][k]["refs_note"] for k in story)


def test_a_run_without_results_json_still_builds(runs, tmp_path):
    run = _copy(runs["base"], tmp_path)
    (run / "results.json").unlink()
    data = h.embedded_data(build_report([run], tmp_path / "rep").index)
    assert any("results.json is missing" in n for n in data["runs"][0]["notices"])
    assert data["runs"][0]["scores"]["tables"] == [] and len(data["runs"][0]["cards"]) == len(h.records(runs["base"]))
    assert all("refs" in data["cases"][c["k"]] for c in data["runs"][0]["cards"])  # data location from the config
