"""`micon publish`: dry runs of the bundled sample and of a raw fixture with quirks read back with
`load_dataset` and `load_task`; every refusal with its message; sharding; the upload against a loopback
stand-in for the Hub API (repo type, paths, commit message, and the token in no output)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
import yaml
from fake_hub import FakeHub
from PIL import Image
from raw_fixture import FOLDERS, edit_card, make_raw

import registry
from micon_tasks import __version__, load_task
from micon_tasks.data.sources import SAMPLE_ROOT, features
from micon_tasks.publish import PublishError, PublishOptions, PublishRefused, add_cli, main, publish
from micon_tasks.schemas import first_error

TASKS = registry.expand_task_names("micon")
TOKEN = "hf_publish-test-token-not-a-real-secret"  # a stand-in; hyphens keep secret scanners quiet
REPO = "micon-org/MICON-Bench"


def _front_matter(readme: Path) -> dict:
    text = readme.read_text("utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text[4:text.index("\n---", 4)])


def _quiet(_msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def sample_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("published") / "hub"
    lines: list[str] = []
    result = publish(PublishOptions(raw=SAMPLE_ROOT, repo_id=REPO, dry_run=True, out=out, license="cc-by-4.0"),
                     echo=lines.append)
    return out, result, lines


@pytest.fixture
def raw(tmp_path):
    return make_raw(tmp_path / "MICON-Bench", n_cases=2)


# -- dry run of the bundled sample ------------------------------------------------------------------
def test_sample_dry_run_writes_the_hub_layout(sample_out):
    out, result, lines = sample_out
    assert result.folder == out and result.commit_url is None
    for task in TASKS:
        assert sorted(p.name for p in (out / "data" / task).iterdir()) == ["test-00000-of-00001.parquet"]
        entries = json.loads((out / "checkpoints" / f"{task}.json").read_text())
        assert first_error("checkpoints", entries) is None
        assert [e["id"] for e in entries] == [c.id for c in registry.get_task(task)(source="sample").checkpoints]
    assert {p for p, _ in result.files} >= {"README.md", "micon_bench.json"}
    assert any(line.startswith("dry run: would create dataset repo micon-org/MICON-Bench") for line in lines)
    assert any("data/story_generation/test-00000-of-00001.parquet" in line for line in lines)
    assert result.counts == {**{t: 5 for t in TASKS}, "all": 30}


def test_sample_card_front_matter_and_body(sample_out):
    out, _, _ = sample_out
    meta = _front_matter(out / "README.md")
    assert meta["license"] == "cc-by-4.0" and meta["pretty_name"] == "MICON-Bench"
    assert meta["task_categories"]
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert list(configs) == ["all", *TASKS]
    assert configs["all"]["default"] is True
    assert configs["all"]["data_files"] == [{"split": "test", "path": "data/*/*.parquet"}]
    assert configs["spatial_composition"]["data_files"] == [{"split": "test", "path": "data/spatial_composition/*.parquet"}]
    infos = {i["config_name"]: i for i in meta["dataset_info"]}
    assert set(infos) == {"all", *TASKS}
    assert infos["story_generation"]["splits"] == [{"name": "test", "num_bytes": infos["story_generation"]["splits"][0]["num_bytes"], "num_examples": 5}]
    assert [f["name"] for f in infos["all"]["features"]] == list(features())
    body = (out / "README.md").read_text()
    assert "2602.19497" in body and "CVPR" in body and "Wu, Mingrui" in body
    assert "| `story_generation` | `story_infer` | 5 | 13 | 2-3 | 18 |" in body
    assert "| `all` | | 30 |" in body
    assert "6 times that rating" in body and "at most 0.4" in body
    assert f'load_task("story_generation", source="hub", dataset_path="{REPO}")' in body
    assert f"micon run --model <adapter> --tasks micon --source hub --dataset_path {REPO}" in body


@pytest.mark.parametrize("task", TASKS)
def test_sample_round_trips_through_load_dataset_and_load_task(sample_out, task):
    import datasets

    out, _, _ = sample_out
    source = load_task(task, source="sample")
    ds = datasets.load_dataset(str(out), task, split="test")
    assert ds.features == features()
    assert list(ds["case_id"]) == source.case_ids
    assert all(isinstance(im, Image.Image) for im in ds[0]["refs"])
    published = load_task(task, source=str(out))
    assert published.case_ids == source.case_ids
    for a, b in zip(published, source):
        assert (a.prompt, a.ref_roles, a.constraints_hard, a.answer_set) == (b.prompt, b.ref_roles, b.constraints_hard, b.answer_set)
        assert [im.tobytes() for im in a.refs] == [im.tobytes() for im in b.refs]
    if task == "story_generation":
        assert all(c.answer_set is not None for c in published)


def test_sample_default_config_is_all(sample_out):
    import datasets

    out, _, _ = sample_out
    ds = datasets.load_dataset(str(out), split="test")
    assert ds.num_rows == 30 and sorted(set(ds["task"])) == sorted(TASKS)


# -- dry run of a raw fixture with quirks, through the CLI ----------------------------------------
def test_cli_dry_run_of_a_raw_fixture_with_quirks(raw, tmp_path, capsys):
    out = tmp_path / "hub"
    code = main(["--raw", str(raw), "--repo-id", REPO, "--dry-run", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "round trip ok" in captured.out
    for task, folder in FOLDERS.items():
        t = load_task(task, source=str(out))
        # the first card had no case_id (its file stem stands in); paths had the data/ prefix
        assert t.case_ids == [f"{folder}_000", f"{folder}_001"]
        assert t[0].extra["ref_paths"][0].startswith("data/")
    manifest = json.loads((out / "micon_bench.json").read_text())
    assert manifest["micon_bench_version"] == __version__
    assert manifest["tasks"]["fgbg_composition"]["num_refs"] == 4


def test_micon_console_script_runs_publish(raw, tmp_path, capsys):
    from micon_tasks.cli import main as micon

    out = tmp_path / "hub"
    code = micon(["publish", "--raw", str(raw), "--repo-id", REPO, "--dry-run", "--out", str(out), "--tasks", "story_generation"])
    assert code == 0, capsys.readouterr().err
    assert load_task("story_generation", source=str(out)).case_ids == ["story_infer_000", "story_infer_001"]


def test_add_cli_registers_publish():
    import argparse

    parser = argparse.ArgumentParser(prog="micon")
    add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["publish", "--raw", "r", "--repo-id", "a/b", "--private", "--revision", "v1",
                              "--max-shard-mb", "5", "--tasks", "story_generation"])
    assert (args.raw, args.repo_id, args.private, args.revision, args.max_shard_mb, args.tasks) == ("r", "a/b", True, "v1", 5.0, "story_generation")
    assert callable(args.func) and args.dry_run is False and args.license == "unknown"


def test_shards_are_bounded_and_complete(raw, tmp_path):
    import datasets

    base = raw / "data" / FOLDERS["object_composition"]
    for i in range(2, 6):  # six cases in all, each image about 20-40 kB of noise
        card = yaml.safe_load((base / "cases" / "object_composition_001.yaml").read_text())
        card["case_id"] = f"object_composition_{i:03d}"
        card["refs"] = {}
        for role in ("RA", "RB"):
            rel = f"object_composition/refs/object_composition_{i:03d}_{role}.png"
            Image.frombytes("RGB", (96, 96), os.urandom(96 * 96 * 3)).save(raw / "data" / rel)
            card["refs"][role] = f"data/{rel}"
        (base / "cases" / f"object_composition_{i:03d}.yaml").write_text(yaml.safe_dump(card))
    out = tmp_path / "hub"
    bound = 0.06  # MB: fits two noise cases, not three
    publish(PublishOptions(raw=raw, repo_id=REPO, dry_run=True, out=out, tasks="object_composition", max_shard_mb=bound),
            echo=_quiet)
    shards = sorted((out / "data" / "object_composition").iterdir())
    n = len(shards)
    assert n >= 3
    assert [p.name for p in shards] == [f"test-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    assert all(p.stat().st_size < bound * 1024 * 1024 * 1.5 for p in shards)
    ds = datasets.load_dataset(str(out), "object_composition", split="test")
    assert list(ds["case_id"]) == [f"object_composition_{i:03d}" for i in range(6)]


# -- refusals -------------------------------------------------------------------------------------
def _refused(raw: Path, tmp_path: Path, tasks: str = "object_composition") -> PublishRefused:
    out = tmp_path / "hub"
    with pytest.raises(PublishRefused) as info:
        publish(PublishOptions(raw=raw, repo_id=REPO, dry_run=True, out=out, tasks=tasks), echo=_quiet)
    assert not out.exists(), "a refused publish must write nothing"
    return info.value


def _write_png(path: Path, size=(24, 24)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, "white").save(path)


def test_refuses_an_absolute_reference_path(raw, tmp_path):
    edit_card(raw, "object_composition", "object_composition_001", refs={"RA": "/etc/hosts", "RB": "data/object_composition/refs/object_composition_001_RB.png"})
    exc = _refused(raw, tmp_path)
    assert len(exc.problems) == 1
    assert "object_composition/cases/object_composition_001.yaml" in str(exc)
    assert "absolute path '/etc/hosts' is not allowed" in str(exc) and "field 'refs.RA'" in str(exc)


def test_refuses_a_path_climbing_out(raw, tmp_path):
    edit_card(raw, "object_composition", "object_composition_001", refs={"RA": "data/../../secret.png"})
    exc = _refused(raw, tmp_path)
    assert "climbs out of the data root" in str(exc) and "object_composition_001.yaml" in str(exc)


def test_refuses_a_link_leading_outside(raw, tmp_path):
    outside = tmp_path / "outside.png"
    _write_png(outside)
    link = raw / "data" / "object_composition" / "refs" / "link.png"
    link.symlink_to(outside)
    edit_card(raw, "object_composition", "object_composition_001", refs={"RA": "data/object_composition/refs/link.png"})
    exc = _refused(raw, tmp_path)
    assert "is a link leading outside the data root" in str(exc) and "object_composition_001.yaml" in str(exc)


def test_refuses_a_missing_and_an_unreadable_image_naming_the_files(raw, tmp_path):
    refs = raw / "data" / "object_composition" / "refs"
    (refs / "object_composition_001_RB.png").unlink()
    (refs / "object_composition_000_RA.png").write_bytes(b"not an image at all")
    exc = _refused(raw, tmp_path)
    text = str(exc)
    assert len(exc.problems) == 2
    assert "file not found: object_composition/refs/object_composition_001_RB.png" in text
    assert "not a readable image" in text and "(file object_composition/refs/object_composition_000_RA.png)" in text


def test_refuses_a_truncated_image(raw, tmp_path):
    path = raw / "data" / "object_composition" / "refs" / "object_composition_000_RA.png"
    buf = io.BytesIO()
    Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3)).save(buf, format="PNG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    exc = _refused(raw, tmp_path)
    assert "(file object_composition/refs/object_composition_000_RA.png)" in str(exc)


@pytest.mark.parametrize("limit", [200, 400], ids=["over-twice-the-limit", "over-the-limit"])
def test_refuses_a_decompression_bomb_naming_the_file(raw, tmp_path, monkeypatch, limit):
    # Pillow errors above twice MAX_IMAGE_PIXELS and only warns above it: a publish refuses both
    path = raw / "data" / "object_composition" / "refs" / "object_composition_000_RA.png"
    _write_png(path, size=(25, 25))  # 625 pixels
    others = raw / "data" / "object_composition" / "refs"
    for p in others.iterdir():
        if p != path:
            _write_png(p, size=(10, 10))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    exc = _refused(raw, tmp_path)
    assert len(exc.problems) == 1
    assert "decompression bomb" in str(exc)
    assert "(file object_composition/refs/object_composition_000_RA.png)" in str(exc)


def test_refuses_schema_violations_duplicates_and_bad_yaml(raw, tmp_path):
    edit_card(raw, "object_composition", "object_composition_000", generation_prompt=None)
    cases = raw / "data" / "object_composition" / "cases"
    dup = yaml.safe_load((cases / "object_composition_001.yaml").read_text())
    (cases / "object_composition_009.yaml").write_text(yaml.safe_dump(dup))
    (cases / "object_composition_010.yaml").write_text("case_id: [unclosed\n")
    exc = _refused(raw, tmp_path)
    text = str(exc)
    assert len(exc.problems) == 3
    assert "field 'prompt'" in text and "object_composition_000.yaml" in text
    assert "duplicate" in text and "object_composition_009.yaml" in text
    assert "not valid YAML" in text and "object_composition_010.yaml" in text


def test_lists_every_problem_across_tasks_not_only_the_first(raw, tmp_path):
    edit_card(raw, "object_composition", "object_composition_000", refs={"RA": "/abs.png"})
    edit_card(raw, "spatial_composition", "spatial_geometric_constraints_001", generation_prompt=None)
    (raw / "data" / "story_infer" / "refs" / "story_infer_001_RA.png").write_bytes(b"broken")
    exc = _refused(raw, tmp_path, tasks="micon")
    assert {p.task for p in exc.problems} == {"object_composition", "spatial_composition", "story_generation"}
    assert len(exc.problems) == 3
    assert str(exc).startswith("publish refused: 3 problem(s)")


def test_story_answer_sets_attached_missing_ones_reported(raw, tmp_path):
    path = raw / "data" / "story_infer" / "simple_candidate_template.json"
    data = json.loads(path.read_text())
    data["cases"] = [c for c in data["cases"] if c["case_id"] != "story_infer_001"]
    path.write_text(json.dumps(data))
    lines: list[str] = []
    out = tmp_path / "hub"
    result = publish(PublishOptions(raw=raw, repo_id=REPO, dry_run=True, out=out, tasks="story_generation"),
                     echo=lines.append)
    assert any("1 case(s) without an answer set: story_infer_001" in w for w in result.warnings)
    assert any(line.startswith("warning:") and "story_infer_001" in line for line in lines)
    task = load_task("story_generation", source=str(out))
    assert task.case("story_infer_000").answer_set.positive_candidates == ("the ball falls",)
    assert task.case("story_infer_001").answer_set is None


def test_refuses_a_bad_or_missing_answer_set(raw, tmp_path):
    path = raw / "data" / "story_infer" / "simple_candidate_template.json"
    data = json.loads(path.read_text())
    data["cases"][0]["positive_candidates"] = []
    path.write_text(json.dumps(data))
    exc = _refused(raw, tmp_path, tasks="story_generation")
    assert "field 'answer_set.positive_candidates'" in str(exc) and "simple_candidate_template.json" in str(exc)
    path.unlink()
    exc = _refused(raw, tmp_path, tasks="story_generation")
    assert "the answer set file is missing" in str(exc)


def test_refuses_a_folder_that_is_no_raw_layout_and_a_bad_repo_id(tmp_path):
    exc = _refused(tmp_path, tmp_path)
    assert "not a raw MICON-Bench layout" in str(exc)
    with pytest.raises(PublishError, match="not a valid Hub repo id"):
        publish(PublishOptions(raw=tmp_path, repo_id="bad repo//id", dry_run=True), echo=_quiet)


def test_cli_refusal_exit_code_and_stderr(raw, tmp_path, capsys):
    edit_card(raw, "object_composition", "object_composition_000", refs={"RA": "/abs.png"})
    code = main(["--raw", str(raw), "--repo-id", REPO, "--dry-run", "--tasks", "object_composition"])
    err = capsys.readouterr().err
    assert code == 1 and "publish refused: 1 problem(s)" in err and "object_composition_000.yaml" in err


# -- upload against the loopback Hub --------------------------------------------------------------
@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    with FakeHub(TOKEN) as fake:
        # what HF_ENDPOINT would set at import (the conftest pointed both at a closed port)
        monkeypatch.setattr(hf_constants, "ENDPOINT", fake.endpoint)
        monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", fake.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        yield fake


def _assert_no_token(*texts: str, folder: Path | None = None) -> None:
    for text in texts:
        assert TOKEN not in text
    if folder is not None:
        for p in folder.rglob("*"):
            if p.is_file():
                assert TOKEN.encode() not in p.read_bytes(), p


def test_upload_through_the_cli_to_the_loopback_hub(raw, tmp_path, hub, capfd, caplog):
    out = tmp_path / "hub"
    code = main(["--raw", str(raw), "--repo-id", REPO, "--private", "--license", "cc-by-4.0", "--out", str(out)])
    captured = capfd.readouterr()
    assert code == 0, captured.err
    _assert_no_token(captured.out, captured.err, caplog.text, folder=out)
    repo = hub.repos[("dataset", REPO)]
    assert repo.private is True
    create = [r for r in hub.requests if r.path == "/api/repos/create"]
    assert len(create) == 1 and json.loads(create[0].body)["type"] == "dataset"
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in hub.requests if r.method == "POST")
    local = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert sorted(hub.files(REPO)) == local
    assert {f"data/{t}/test-00000-of-00001.parquet" for t in TASKS} <= set(local)
    assert hub.files(REPO)["README.md"] == (out / "README.md").read_bytes()
    assert len(repo.commits) == 1
    assert repo.commits[0]["summary"] == f"Publish MICON-Bench with micon-bench {__version__}"
    assert f"/datasets/{REPO}/commit/{repo.commits[0]['oid']}" in captured.out
    for blob in hub.files(REPO).values():
        assert TOKEN.encode() not in blob


def test_published_repo_loads_back_from_the_hub(raw, tmp_path, hub):
    publish(PublishOptions(raw=raw, repo_id=REPO, tasks="story_generation,fgbg_composition"), echo=_quiet)
    task = load_task("story_generation", source="hub", dataset_path=REPO)
    assert task.case_ids == ["story_infer_000", "story_infer_001"]
    assert task[1].answer_set is not None and len(task[1].refs) == 3
    assert not any("/api/repos/create" in r.path for r in hub.requests if r.method == "GET")


def test_republish_removes_stale_shards_and_uses_the_branch(raw, tmp_path, hub):
    opts = dict(raw=raw, repo_id=REPO, tasks="object_composition", revision="v1")
    publish(PublishOptions(**opts, max_shard_mb=0.0001), echo=_quiet)  # one case per shard
    assert sorted(p for p in hub.files(REPO, branch="v1") if p.startswith("data/")) == [
        "data/object_composition/test-00000-of-00002.parquet", "data/object_composition/test-00001-of-00002.parquet"]
    assert any(r.path == f"/api/datasets/{REPO}/branch/v1" for r in hub.requests)
    assert hub.files(REPO, branch="main") == {}
    publish(PublishOptions(**opts), echo=_quiet)
    repo = hub.repos[("dataset", REPO)]
    assert sorted(p for p in hub.files(REPO, branch="v1") if p.startswith("data/")) == [
        "data/object_composition/test-00000-of-00001.parquet"]
    assert sorted(repo.commits[-1]["deleted"]) == ["data/object_composition/test-00000-of-00002.parquet",
                                                  "data/object_composition/test-00001-of-00002.parquet"]


def test_no_token_stops_before_any_request(raw, hub, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(PublishError, match="no Hugging Face token: set HF_TOKEN"):
        publish(PublishOptions(raw=raw, repo_id=REPO, tasks="object_composition"), echo=_quiet)
    assert hub.requests == []


def test_refused_data_uploads_nothing(raw, hub):
    edit_card(raw, "object_composition", "object_composition_000", refs={"RA": "/abs.png"})
    with pytest.raises(PublishRefused):
        publish(PublishOptions(raw=raw, repo_id=REPO, tasks="object_composition"), echo=_quiet)
    assert hub.requests == []


def test_a_rejected_token_fails_without_showing_it(raw, hub, monkeypatch, capfd, caplog):
    hub.token = "hf_the_one_the_server_expects"
    code = main(["--raw", str(raw), "--repo-id", REPO, "--tasks", "object_composition"])
    captured = capfd.readouterr()
    assert code == 1 and "publish failed: could not create the dataset repo" in captured.err
    assert "401" in captured.err
    _assert_no_token(captured.out, captured.err, caplog.text)
    with pytest.raises(PublishError) as info:
        publish(PublishOptions(raw=raw, repo_id=REPO, tasks="object_composition"), echo=_quiet)
    _assert_no_token(str(info.value), repr(info.value))
    assert info.value.__context__ is None and info.value.__cause__ is None


def test_load_task_with_a_repo_id_as_source(raw, hub):
    publish(PublishOptions(raw=raw, repo_id=REPO, tasks="fgbg_composition"), echo=_quiet)
    ids = load_task("fgbg_composition", source=REPO).case_ids  # the data is read on first use
    assert ids == ["foreground_background_composition_000", "foreground_background_composition_001"]


def test_publishing_twice_writes_identical_bytes(raw, tmp_path):
    folders = [tmp_path / "a", tmp_path / "b"]
    for out in folders:
        publish(PublishOptions(raw=raw, repo_id=REPO, dry_run=True, out=out, tasks="story_generation"), echo=_quiet)
    files = [{p.relative_to(f).as_posix(): p.read_bytes() for p in f.rglob("*") if p.is_file()} for f in folders]
    assert files[0] == files[1]  # so a re-publish of unchanged data commits nothing new
