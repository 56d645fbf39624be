"""Tasks: loading through `datasets` from the raw layout (with its quirks), validation, checkpoint sets,
path confinement, include_path YAML tasks, the official .qa.txt format and the data sources."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from raw_fixture import FOLDERS, edit_card, make_raw

import registry
from micon_tasks import load_task
from micon_tasks.checkpoints import dimension_counts, parse_qa_text
from micon_tasks.errors import CaseValidationError, ConfigError, DataSourceError, PathEscapeError
from micon_tasks.task import include_path

# PROTOCOL 3: checkpoints per dimension and the hard checkpoints (which cap their own dimension)
EXPECTED = {
    "object_composition": ({"A": 3, "B": 3, "C": 3, "D": 4, "G": 2}, {"A_check_1", "B_check_1"}),
    "spatial_composition": ({"A": 3, "B": 3, "C": 4, "D": 3, "G": 3}, {"A_check_1", "C_check_1"}),
    "attribute_disentanglement": ({"A": 3, "B": 3, "C": 3, "D": 3, "G": 3}, {"A_check_1", "B_check_1", "C_check_1", "D_check_1"}),
    "component_transfer": ({"A": 3, "B": 3, "C": 3, "D": 3, "G": 3}, {"A_check_1", "B_check_2", "C_check_1"}),
    "fgbg_composition": ({"A": 3, "B": 3, "C": 3, "D": 3, "G": 3}, {"B_check_1", "D_check_1"}),
    "story_generation": ({"A": 3, "B": 3, "C": 3, "D": 3, "E": 3, "G": 3}, {"A_check_1", "B_check_1", "E_check_1"}),
}


@pytest.fixture
def raw(tmp_path):
    return make_raw(tmp_path / "MICON-Bench", n_cases=2)


@pytest.mark.parametrize("task", list(EXPECTED))
def test_checkpoint_sets_match_the_protocol(task):
    t = registry.get_task(task)(source="sample")
    counts, hard = EXPECTED[task]
    assert dimension_counts(t.checkpoints) == counts
    assert {c.id for c in t.checkpoints if c.hard} == hard
    assert all(c.caps == c.dimension for c in t.checkpoints if c.hard)
    assert all(c.caps is None for c in t.checkpoints if not c.hard)
    assert t.is_story == (task == "story_generation")


@pytest.mark.parametrize("task", list(FOLDERS))
def test_each_task_loads_from_a_raw_folder_with_quirks(raw, task):
    t = load_task(task, source=str(raw))
    assert len(t) == 2
    import datasets

    assert isinstance(t.dataset, datasets.Dataset)
    assert isinstance(t.dataset.features["refs"].feature, datasets.Image)
    first = t[0]
    # the first card had no case_id: its file stem stands in
    assert first.case_id == f"{FOLDERS[task]}_000"
    assert [c.case_id for c in t] == [f"{FOLDERS[task]}_000", f"{FOLDERS[task]}_001"]
    n_refs = {len(c.refs) for c in t}
    if task == "attribute_disentanglement":
        assert n_refs == {3}
    elif task == "fgbg_composition":
        assert n_refs == {2}
    else:
        assert n_refs == {2, 3}
    assert first.ref_roles == ["RA", "RB"][: len(first.refs)] + (["RC"] if len(first.refs) == 3 else [])
    assert first.refs[0].mode == "RGB" and first.refs[1].size == (32, 24)  # RB is 8 px wider: order kept
    assert first.constraints_hard == ["Both subjects are visible.", "Nothing else is added."]
    assert first.extra["ref_paths"][0].startswith("data/")
    if task == "story_generation":
        assert first.answer_set.positive_candidates == ("the ball falls",)
    else:
        assert first.answer_set is None


def test_official_name_and_canonical_load_the_same_cases(raw):
    a = load_task("spatial_geometric_constraints", source=str(raw))
    b = load_task("spatial_composition", source=str(raw))
    assert a.name == b.name == "spatial_composition"
    assert a.case_ids == b.case_ids


def test_second_load_reuses_the_conversion(raw, fresh_cache):
    load_task("object_composition", source=str(raw)).dataset
    converted = sorted((fresh_cache / "converted").iterdir())
    assert len(converted) == 1
    stamp = converted[0].stat().st_mtime_ns
    load_task("object_composition", source=str(raw)).dataset
    assert sorted((fresh_cache / "converted").iterdir()) == converted
    assert converted[0].stat().st_mtime_ns == stamp
    edit_card(raw, "object_composition", "object_composition_001", goal="changed")  # new fingerprint
    t = load_task("object_composition", source=str(raw))
    assert t[1].goal == "changed"
    assert len(list((fresh_cache / "converted").iterdir())) == 2


@pytest.mark.parametrize(
    "changes,field,rule",
    [
        ({"generation_prompt": None}, "prompt", "None is not of type 'string'"),
        ({"constraints_hard": [""]}, "constraints_hard.0", "should be non-empty"),
        ({"case_id": "bad id!"}, "case_id", "does not match"),
        ({"refs": {}}, "refs", "at least one entry"),
    ],
)
def test_schema_errors_name_task_case_and_field(raw, changes, field, rule):
    edit_card(raw, "component_transfer", "local_element_transfer_001", **changes)
    with pytest.raises(CaseValidationError) as err:
        load_task("component_transfer", source=str(raw)).dataset
    e = err.value
    assert e.task == "component_transfer" and e.field == field
    assert e.case_id in ("local_element_transfer_001", "bad id!")
    assert rule in str(e) and "component_transfer" in str(e) and field in str(e)


def test_missing_reference_file_is_named(raw):
    edit_card(raw, "object_composition", "object_composition_001", refs={"RA": "object_composition/refs/nothere.png"})
    with pytest.raises(CaseValidationError, match=r"case 'object_composition_001', field 'refs.RA': file not found"):
        load_task("object_composition", source=str(raw)).dataset


def test_broken_image_is_named(raw):
    (raw / "data/object_composition/refs/object_composition_001_RB.png").write_bytes(b"not a png")
    with pytest.raises(CaseValidationError, match=r"field 'refs.RB': .*not a readable image"):
        load_task("object_composition", source=str(raw)).dataset


@pytest.mark.parametrize(
    "ref,why",
    [
        ("../../outside.png", "climbs out"),
        ("data/../../outside.png", "climbs out"),
        ("/etc/passwd", "absolute path"),
    ],
)
def test_paths_escaping_the_data_root_are_refused(raw, ref, why):
    (raw.parent / "outside.png").write_bytes(b"x")
    edit_card(raw, "fgbg_composition", "foreground_background_composition_001", refs={"RA": ref, "RB": ref})
    with pytest.raises(PathEscapeError, match=why) as err:
        load_task("fgbg_composition", source=str(raw)).dataset
    assert "foreground_background_composition_001" in str(err.value) and "refs.RA" in str(err.value)


def test_a_link_leading_outside_is_refused(raw, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"x")
    link = raw / "data/object_composition/refs/link.png"
    link.symlink_to(secret)
    edit_card(raw, "object_composition", "object_composition_001", refs={"RA": "object_composition/refs/link.png"})
    with pytest.raises(PathEscapeError, match="link leading outside"):
        load_task("object_composition", source=str(raw)).dataset


def test_story_answer_set_missing_file_is_an_error(raw):
    (raw / "data/story_infer/simple_candidate_template.json").unlink()
    with pytest.raises(DataSourceError, match="answer set"):
        load_task("story_generation", source=str(raw)).dataset


def test_hub_source_offline_gives_one_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataSourceError) as err:
        load_task("object_composition").dataset
    msg = str(err.value)
    assert "Hangliuuu/MICON-Bench" in msg and 'source="sample"' in msg and "load_task(" in msg


def test_hub_source_unreachable_endpoint(monkeypatch):
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(c, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("MICON_DATASET", "someone/other-bench")
    with pytest.raises(DataSourceError, match="someone/other-bench"):
        load_task("object_composition").dataset


def test_micon_dataset_variable_may_point_at_a_local_copy(raw, monkeypatch):
    monkeypatch.setenv("MICON_DATASET", str(raw))
    assert len(load_task("object_composition")) == 2


def test_a_micon_dataset_variable_naming_nothing_is_refused_naming_the_variable(monkeypatch):
    monkeypatch.setenv("MICON_DATASET", "/no/such/copy")
    with pytest.raises(DataSourceError, match=r"\$MICON_DATASET '/no/such/copy' is neither a Hub repo id"):
        load_task("object_composition").data_location  # noqa: B018


def test_unknown_source_is_an_error():
    with pytest.raises(DataSourceError, match="neither 'hub', 'sample', a Hub repo id"):
        load_task("object_composition", source="/no/such/place").dataset


# -- the official .qa.txt line format -------------------------------------------------------------
QA = """
A. Instruction Following
- A_check_1 (H1): Are all requested subjects present?
- A_check_2: Is the scene as described?
B. Identity/Fidelity
- B_check_1: Same subject as the reference?
"""


def test_qa_text_parser_reads_ids_hard_flags_and_questions():
    cps = parse_qa_text(QA, task="t")
    assert [(c.id, c.hard, c.caps) for c in cps] == [("A_check_1", True, "A"), ("A_check_2", False, None), ("B_check_1", False, None)]
    assert cps[0].question == "Are all requested subjects present?"


def test_qa_text_parser_names_a_bad_line():
    with pytest.raises(ConfigError, match="line 2"):
        parse_qa_text("- A_check_1: ok\n- A_check_x: broken\n", task="t")


def test_load_task_with_official_checkpoints_file(raw, tmp_path):
    qa = tmp_path / "object.qa.txt"
    qa.write_text(QA)
    t = load_task("object_composition", source=str(raw), checkpoints_from=qa)
    assert [c.id for c in t.checkpoints] == ["A_check_1", "A_check_2", "B_check_1"]
    assert t.describe()["checkpoints"] == str(qa)


# -- include_path -------------------------------------------------------------------------------
def test_include_path_yaml_tasks_templates_groups_and_broken_files(raw, tmp_path):
    inc = tmp_path / "my_tasks"
    inc.mkdir()
    (inc / "_shared_yaml").write_text("official_folder: object_composition\ndescription: shared\n")
    (inc / "objects_lite.yaml").write_text(
        "task: objects_lite\ninclude: _shared_yaml\nrefs: {min: 2, max: 3}\n"
        "checkpoints:\n  - {id: A_check_1, hard: true, question: 'All objects present?'}\n"
        "  - {id: G_check_1, question: 'Clean image?'}\n"
    )
    (inc / "spatial_variant.yaml").write_text("task: spatial_variant\nclass: spatial_composition\ndescription: same data, new name\n")
    (inc / "lite_group.yaml").write_text("group: lite\ntask: [objects_lite, spatial_variant]\n")
    (inc / "broken.yaml").write_text("task: [unclosed\n")
    try:
        with pytest.warns(UserWarning, match="broken.yaml"):
            report = include_path(inc)
        assert sorted(report.tasks) == ["objects_lite", "spatial_variant"]
        assert report.groups == ["lite"]
        assert [Path(f).name for f, _ in report.errors] == ["broken.yaml"]
        t = load_task("objects_lite", source=str(raw))
        assert len(t) == 2 and [c.id for c in t.checkpoints] == ["A_check_1", "G_check_1"]
        assert t.config.description == "shared"
        v = load_task("spatial_variant", source=str(raw))
        assert len(v.checkpoints) == 16 and v.config.official_folder == "spatial_geometric_constraints"
        assert registry.expand_task_names("lite") == ["objects_lite", "spatial_variant"]
    finally:
        for name in ("objects_lite", "spatial_variant"):
            registry.tasks.remove(name)
        registry.groups.remove("lite")


def test_include_cycle_is_reported(tmp_path):
    (tmp_path / "a.yaml").write_text("task: a\ninclude: b_yaml\n")
    (tmp_path / "b_yaml").write_text("include: a.yaml\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = include_path(tmp_path)
    assert report.tasks == [] and "include cycle" in report.errors[0][1]


def test_unknown_config_key_is_named(tmp_path):
    (tmp_path / "t.yaml").write_text("task: typo_task\nofficial_folder: x\ncheckpont: []\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = include_path(tmp_path)
    assert "checkpont" in report.errors[0][1]


@pytest.mark.parametrize("generation, field, rule", [
    ("{width: 512, steps: 4}", "generation.steps", "unknown"),
    ("{width: 0, height: 512}", "generation.width", "positive integer"),
    ("{width: 512, height: '512'}", "generation.height", "positive integer"),
    ("[512, 512]", "generation", "mapping"),
])
def test_a_bad_generation_setting_names_the_task_and_field(generation, field, rule):
    import yaml

    from micon_tasks.config import TaskConfig

    with pytest.raises(ConfigError, match=rf"task 'sized'.*'{field}'.*{rule}"):
        TaskConfig.from_dict(yaml.safe_load(f"task: sized\ngeneration: {generation}\ncheckpoints: []\n"))
    ok = TaskConfig.from_dict({"task": "sized", "generation": {"width": 48}, "checkpoints": []})
    assert ok.generation_size == (48, None) and TaskConfig.from_dict({"task": "plain", "checkpoints": []}).generation_size is None


# -- the bundled sample -------------------------------------------------------------------------
@pytest.mark.parametrize("task", list(FOLDERS))
def test_each_task_loads_from_the_bundled_sample(task):
    t = load_task(task, source="sample")
    assert len(t) >= 4
    cases = list(t)
    assert [c.case_id for c in cases] == t.case_ids == sorted(t.case_ids)
    assert all(c.prompt and c.goal and c.constraints_hard for c in cases)
    assert all(c.refs and all(im.mode == "RGB" for im in c.refs) for c in cases)
    if task == "story_generation":
        assert all(c.answer_set and c.answer_set.positive_candidates for c in cases)
    assert t[-1].case_id == cases[-1].case_id


def test_sample_mixes_two_and_three_reference_cases():
    counts = {len(c.refs) for name in FOLDERS for c in load_task(name, source="sample")}
    assert counts == {2, 3}


# -- case cards the strict reader refuses (hardening 6, 20) ----------------------------------------
def _card_path(raw, task, case_file):
    return edit_card(raw, task, case_file)  # no change: just the card's path


def test_a_repeated_key_in_a_case_card_is_refused_naming_case_and_field(raw):
    path = _card_path(raw, "object_composition", "object_composition_001")
    path.write_text(path.read_text() + "generation_prompt: a second prompt\n")
    with pytest.raises(CaseValidationError) as err:
        load_task("object_composition", source=str(raw)).dataset
    e = err.value
    assert (e.task, e.case_id, e.field) == ("object_composition", "object_composition_001", "prompt")
    assert "'generation_prompt' is repeated" in str(e)


def test_a_yaml_alias_in_a_case_card_is_refused(raw):
    path = _card_path(raw, "object_composition", "object_composition_001")
    bomb = 'x0: &a0 ["lol", "lol", "lol"]\nx1: &a1 [*a0, *a0, *a0]\nnotes: [*a1, *a1, *a1]\n'
    path.write_text("\n".join(line for line in path.read_text().splitlines() if not line.startswith("notes")) + "\n" + bomb)
    with pytest.raises(CaseValidationError, match=r"case 'object_composition_001', field '\(card\)'.*alias") as err:
        load_task("object_composition", source=str(raw)).dataset
    assert "object_composition_001.yaml" in str(err.value)


@pytest.mark.parametrize("changes,field", [
    ({"case_id": "object_composition_001\n"}, "case_id"),
    ({"generation_prompt": "  \n\t "}, "prompt"),
])
def test_trailing_newline_id_and_blank_prompt_are_refused(raw, changes, field):
    edit_card(raw, "object_composition", "object_composition_001", **changes)
    with pytest.raises(CaseValidationError) as err:
        load_task("object_composition", source=str(raw)).dataset
    assert err.value.field == field and err.value.task == "object_composition"
    assert "object_composition_001" in err.value.case_id


# -- --checkpoints_from: pairs, an official folder, one file per task (hardening 23, 26) ----------
OFFICIAL = {
    "object_composition": "object_composition.qa.txt",
    "spatial_composition": "spatial_constraints.qa.txt",
    "attribute_disentanglement": "style_disentangle.qa.txt",
    "component_transfer": "part_transfer.qa.txt",
    "fgbg_composition": "fg_bg_replace.qa.txt",
    "story_generation": "causal_story.qa.txt",
}


def test_cards_name_the_official_template_files():
    assert {t: registry.get_task(t).config.official_template for t in OFFICIAL} == OFFICIAL


def test_a_relative_checkpoints_file_resolves_against_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "object.qa.txt").write_text(QA)
    monkeypatch.chdir(tmp_path)
    t = load_task("object_composition", source="sample", checkpoints_from="object.qa.txt")
    assert [c.id for c in t.checkpoints] == ["A_check_1", "A_check_2", "B_check_1"]


def test_checkpoints_from_a_folder_of_official_templates(tmp_path):
    from micon_tasks.checkpoints import resolve_checkpoints_from

    for task, name in OFFICIAL.items():
        extra = "- E_check_1 (H1): Does the story move on?\n" if task == "story_generation" else ""
        (tmp_path / name).write_text(QA + extra)
    got = resolve_checkpoints_from(str(tmp_path), list(OFFICIAL))
    assert got == {t: str(tmp_path / n) for t, n in OFFICIAL.items()}
    story = load_task("story_generation", source="sample", checkpoints_from=got)
    assert [c.dimension for c in story.checkpoints] == ["A", "A", "B", "E"]
    (tmp_path / "causal_story.qa.txt").unlink()
    with pytest.raises(ConfigError, match="task 'story_generation': .* holds no causal_story.qa.txt"):
        resolve_checkpoints_from(str(tmp_path), list(OFFICIAL))


def test_checkpoints_from_pairs_and_one_file_for_several_tasks_is_refused(tmp_path, monkeypatch):
    from micon_tasks.checkpoints import resolve_checkpoints_from

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.qa.txt").write_text(QA)
    (tmp_path / "b.qa.txt").write_text(QA)
    tasks = ["object_composition", "story_generation"]
    got = resolve_checkpoints_from(["object_composition=a.qa.txt,story_infer=b.qa.txt"], tasks)
    assert got == {"object_composition": str(tmp_path / "a.qa.txt"), "story_generation": str(tmp_path / "b.qa.txt")}
    with pytest.raises(ConfigError, match="one template file for 2 tasks"):
        resolve_checkpoints_from("a.qa.txt", tasks)
    with pytest.raises(ConfigError, match="one template file .* for several tasks"):
        resolve_checkpoints_from("object_composition=a.qa.txt,story_generation=a.qa.txt", tasks)
    with pytest.raises(ConfigError, match="not selected"):
        resolve_checkpoints_from("spatial_composition=a.qa.txt", tasks)


def test_cli_refuses_one_checkpoints_file_for_the_whole_benchmark(tmp_path, capsys, monkeypatch):
    from micon_tasks.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "object.qa.txt").write_text(QA)
    assert main(["validate", "--tasks", "micon", "--source", "sample", "--checkpoints_from", "object.qa.txt"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "one template file" in err[0] and "causal_story.qa.txt" in err[0]
    args = ["validate", "--tasks", "object_composition", "story_generation", "--source", "sample",
            "--checkpoints_from", "object_composition=object.qa.txt"]
    assert main(args) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert rows["object_composition"][3] == "3" and rows["story_generation"][3] == "18"


def test_run_config_resolves_checkpoints_from_once(tmp_path, monkeypatch):
    from micon_tasks.runner.config import RunConfig

    monkeypatch.chdir(tmp_path)
    (tmp_path / "object.qa.txt").write_text(QA)
    cfg = RunConfig(model="m", tasks=["object_composition"], checkpoints_from=["object.qa.txt"])
    assert cfg.checkpoints_from == {"object_composition": str(tmp_path / "object.qa.txt")}
    assert RunConfig.from_dict(cfg.to_dict()).judge_identity() == cfg.judge_identity()
    assert RunConfig(model="m", tasks=["object_composition"]).checkpoints_from is None
    with pytest.raises(ConfigError, match="one template file"):
        RunConfig(model="m", tasks=["object_composition", "fgbg_composition"], checkpoints_from="object.qa.txt")


def test_task_dimensions_follow_the_scorer():
    from micon_tasks.scoring import dimension_order

    t = registry.get_task("story_generation")(source="sample")
    assert t.dimensions == dimension_order(t.checkpoints) == list(dimension_counts(t.checkpoints))
