"""OmniContext data: the sample, local folders, the Hub path (faked), filtering and refusals by item and field."""

from __future__ import annotations

import pytest
import test_omnicontext_helpers as oc

import registry
from micon_tasks.cli import main
from micon_tasks.errors import CaseValidationError, DataSourceError
from micon_tasks.suites.omnicontext import data
from micon_tasks.task import load_task

TYPES = data.TASK_TYPES


def test_sample_task_yields_cases_with_refs_and_prompt():
    task = load_task("omnicontext_multi_object", source="sample")
    cases = list(task)
    assert len(task) == len(cases) == 2
    for case in cases:
        assert case.task == "omnicontext_multi_object" and case.extra["task_type"] == "multi_object"
        assert len(case.refs) == 2 and case.ref_roles == ["RA", "RB"] and all(im.mode == "RGB" for im in case.refs)
        assert case.prompt and "image 1" in case.prompt
    assert task.config.scoring.kind == "rubric" and task.checkpoints == []
    assert task.config.generation == {"width": 1024, "height": 1024} and task.config.num_images == 1


def test_every_type_has_its_sample_rows_and_non_english_items_are_filtered_and_counted():
    sizes = {t: len(load_task(f"omnicontext_{t}", source="sample")) for t in TYPES}
    assert sizes == dict.fromkeys(TYPES, 2)
    task = load_task("omnicontext_single_object", source="sample")
    assert task.filtered["n_filtered"] == 1 and task.filtered["filtered_languages"] == {"zh": 1}
    assert task.describe()["filtered"]["n_filtered"] == 1 and task.describe()["task_type"] == "single_object"
    assert all(c.prompt.isascii() for c in task)


def test_ls_lists_the_eight_tasks_and_the_group(capsys):
    assert main(["ls", "tasks"]) == 0
    listed = set(capsys.readouterr().out.split())
    assert {f"omnicontext_{t}" for t in TYPES} <= listed
    assert main(["ls", "groups"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("omnicontext:"))
    assert line.split(": ")[1].split(", ") == [f"omnicontext_{t}" for t in TYPES]
    assert registry.suites.get("omnicontext")["reference_judge"] == "gpt-4.1"


def test_local_parquet_folder_and_save_to_disk_folder(tmp_path):
    rows = [oc.row("a1"), oc.row("a2", n_images=3), oc.row("b1", task_type="scene_object"),
            oc.row("a3", language="de")]
    folder = oc.parquet_folder(tmp_path / "pq", rows)
    task = load_task("omnicontext_multi_object", source=str(folder))
    assert task.case_ids == ["a1", "a2"] and [len(c.refs) for c in task] == [2, 3]
    assert task.filtered["filtered_languages"] == {"de": 1} and task.data_location["kind"] == "folder"
    oc.hub_dataset(rows).save_to_disk(str(tmp_path / "disk"))
    again = load_task("omnicontext_multi_object", source=str(tmp_path / "disk"))
    assert again.case_ids == ["a1", "a2"] and again[1].refs[2].size == (24, 16)


@pytest.mark.parametrize(("bad", "field"), [
    ({"task_type": "multi_animal"}, "task_type"),
    ({"instruction": "   "}, "instruction"),
    ({"input_images": []}, "input_images"),
    ({"input_images": [{"bytes": None, "path": "/etc/passwd"}]}, "input_images[0]"),
    ({"instruction_language": None}, "instruction_language"),
    ({"key": "a1"}, "key"),  # a repeated key
])
def test_bad_items_are_refused_when_the_task_loads_naming_item_and_field(tmp_path, bad, field):
    broken = {**oc.row("broken"), **bad}
    folder = oc.parquet_folder(tmp_path, [oc.row("a1"), broken])
    with pytest.raises(CaseValidationError) as info:
        len(load_task("omnicontext_multi_object", source=str(folder)))
    err = info.value
    assert err.task == "omnicontext_multi_object" and err.field == field
    assert err.case_id == broken["key"]


def test_unknown_task_type_is_refused_by_every_task_not_only_its_own(tmp_path):
    folder = oc.parquet_folder(tmp_path, [oc.row("a1"), oc.row("odd", task_type="single_animal")])
    with pytest.raises(CaseValidationError, match="case 'odd', field 'task_type'.*unknown task type 'single_animal'"):
        len(load_task("omnicontext_scene_character", source=str(folder)))


def test_missing_columns_are_named(tmp_path):
    ds = oc.hub_dataset([oc.row("a1")]).remove_columns(["instruction_language"])
    (tmp_path / "data").mkdir()
    ds.to_parquet(str(tmp_path / "data" / "train-0.parquet"))
    with pytest.raises(DataSourceError, match=r"no column\(s\) \['instruction_language'\]"):
        len(load_task("omnicontext_multi_object", source=str(tmp_path)))


def test_hub_source_calls_load_dataset_with_the_repo_split_and_revision(monkeypatch):
    import datasets

    calls = []

    def fake_load(repo, *args, **kw):
        calls.append((repo, kw.get("split"), kw.get("revision")))
        return oc.hub_dataset([oc.row("h1", task_type="scene_character"), oc.row("h2")])

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.setattr(data, "_LOADED", {})
    task = load_task("omnicontext_scene_character", revision="abc123")
    assert task.data_location == {"kind": "hub", "location": "OmniGen2/OmniContext", "revision": "abc123",
                                  "chosen_by": "task card"}
    assert task.case_ids == ["h1"] and calls == [("OmniGen2/OmniContext", "train", "abc123")]
    assert load_task("omnicontext_multi_object", revision="abc123").case_ids == ["h2"]
    assert len(calls) == 1  # eight tasks share one read of the source


def test_location_comes_from_the_projects_resolver_with_omnicontexts_own_sample_and_repo(monkeypatch, tmp_path):
    """One resolver for every suite: OmniContext keeps only its sample and Hub repo, and never follows
    $MICON_DATASET (MICON-Bench's data), whatever that variable names."""
    from micon_tasks.data.sources import resolve_data_location

    monkeypatch.setenv("MICON_DATASET", str(tmp_path))
    task = load_task("omnicontext_single_object")
    assert task.data_location == {"kind": "hub", "location": data.HUB_REPO, "revision": None, "chosen_by": "task card"}
    assert task.data_location == resolve_data_location(task.config, env_var=None, default_repo=data.HUB_REPO)
    assert load_task("omnicontext_single_object", source="sample").data_location["location"] == str(data.SAMPLE_ROOT)
    assert load_task("omnicontext_single_object", dataset_path=str(tmp_path)).data_location == {
        "kind": "folder", "location": str(tmp_path.resolve()), "revision": None, "chosen_by": "dataset_path"}
    with pytest.raises(DataSourceError, match=r"'omnicontext_single_object': dataset_path '/no/such/copy' is neither"):
        load_task("omnicontext_single_object", dataset_path="/no/such/copy").data_location  # noqa: B018


def test_unreachable_hub_is_one_clear_error(monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setattr(data, "_LOADED", {})
    with pytest.raises(DataSourceError, match="cannot load the Hub dataset 'OmniGen2/OmniContext'.*--source sample"):
        len(load_task("omnicontext_single_character"))


def test_sample_build_is_deterministic_and_matches_the_bundled_file(tmp_path):
    pytest.importorskip("skimage", reason="the sample is built from scikit-image's bundled photographs")
    import sys

    sys.path.insert(0, str(oc.h.ROOT / "scripts"))
    try:
        import build_omnicontext_sample as b
    finally:
        sys.path.pop(0)
    b.build(tmp_path)
    bundled = data.SAMPLE_ROOT
    assert (tmp_path / b.PARQUET).read_bytes() == (bundled / b.PARQUET).read_bytes()
    assert (tmp_path / "README.md").read_text() == (bundled / "README.md").read_text()
    assert "CC0" in (bundled / "README.md").read_text() and "zh, filtered" in (bundled / "README.md").read_text()


def test_a_row_without_key_is_named_by_its_position(tmp_path):
    folder = oc.parquet_folder(tmp_path, [oc.row("a1"), {**oc.row("x"), "key": ""}])
    with pytest.raises(CaseValidationError, match="case 'row 1', field 'key'"):
        len(load_task("omnicontext_multi_object", source=str(folder)))


def test_a_card_with_an_unknown_task_type_is_refused_when_indexed(tmp_path):
    from micon_tasks.index import include_path

    (tmp_path / "odd.yaml").write_text("task: omnicontext_odd\nclass: omnicontext_single_object\n"
                                       "metadata: {version: 1, task_type: single_animal}\n")
    with pytest.warns(UserWarning, match="omnicontext_odd.*metadata.task_type.*'single_animal'"):
        report = include_path(tmp_path)
    assert report.tasks == [] and "omnicontext_odd" not in registry.list_tasks()
