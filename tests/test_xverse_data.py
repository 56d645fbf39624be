"""XVerseBench data: the prepared folder, the tasks reading it, `micon prepare xversebench` and the sample."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from PIL import Image

from micon_tasks.cli import main
from micon_tasks.errors import CaseValidationError, DataSourceError, PathEscapeError
from micon_tasks.suites.xversebench.data import SAMPLE_ROOT, read_split, validate_row
from micon_tasks.suites.xversebench.prepare import collect, prepare
from micon_tasks.task import load_task

REPO = Path(__file__).resolve().parents[1]


def test_sample_tasks_load_with_subjects_and_questions():
    single = load_task("xversebench_single", "sample")
    multi = load_task("xversebench_multi", "sample")
    assert len(single) == 4 and len(multi) == 3
    case = single[0]
    assert case.case_id == "single_000" and case.ref_roles == ["RA"] and case.refs[0].size == (160, 160)
    assert case.extra["subjects"] == [{"type": "human", "label": "woman", "caption": "a woman"}]
    assert case.extra["questions"][2] == {"id": "3", "question": "Is the woman smiling?", "parents": ["1"],
                                          "tuple": "attribute - state"}
    assert multi.subject_types("multi_002") == ["human", "animal", "object"]
    assert [len(c.refs) for c in multi] == [2, 2, 3]
    assert single.config.num_images == 4 and single.config.generation == {"width": 1024, "height": 1024}
    assert single.data_location["kind"] == "sample" and single.describe()["num_images"] == 4


def test_without_a_folder_the_error_says_how_to_prepare_one(monkeypatch):
    monkeypatch.delenv("MICON_XVERSEBENCH", raising=False)
    with pytest.raises(DataSourceError, match="micon prepare xversebench"):
        len(load_task("xversebench_single"))


def test_env_var_and_dataset_path_pick_the_folder(monkeypatch):
    monkeypatch.setenv("MICON_XVERSEBENCH", str(SAMPLE_ROOT))
    assert len(load_task("xversebench_multi")) == 3
    monkeypatch.delenv("MICON_XVERSEBENCH")
    assert load_task("xversebench_multi", dataset_path=str(SAMPLE_ROOT)).data_location["chosen_by"] == "--dataset_path"


def _row(**change):
    row = {"case_id": "single_000", "prompt": "a cat", "subjects": [{"image": "images/animal/c.png", "type": "animal",
           "label": "cat"}], "questions": [{"id": "1", "question": "Is there a cat?", "parents": ["0"]}]}
    row.update(change)
    return row


@pytest.mark.parametrize("change, field", [
    ({"prompt": ""}, "prompt"),
    ({"subjects": [{"image": "x.png", "type": "robot", "label": "r"}]}, "subjects[0].type"),
    ({"subjects": [{"image": "x.png", "type": "object", "label": ""}]}, "subjects[0].label"),
    ({"questions": []}, "questions"),
    ({"questions": [{"id": "1", "question": "a", "parents": [0]}]}, "questions[0].parents"),
    ({"questions": [{"id": "1", "question": "a", "parents": []}, {"id": "1", "question": "b", "parents": []}]},
     "questions[1].id"),
])
def test_a_bad_case_line_names_task_case_and_field(change, field):
    with pytest.raises(CaseValidationError) as err:
        validate_row(_row(**change), task="xversebench_single")
    assert (err.value.task, err.value.case_id, err.value.field) == ("xversebench_single", "single_000", field)


def test_image_paths_stay_inside_the_folder(tmp_path):
    with pytest.raises(PathEscapeError):
        validate_row(_row(subjects=[{"image": "../x.png", "type": "animal", "label": "cat"}]), task="t", root=tmp_path)
    with pytest.raises(CaseValidationError, match="missing"):
        validate_row(_row(), task="t", root=tmp_path)


# -- micon prepare xversebench ------------------------------------------------------------------------
def _checkout(root: Path, *, skip: tuple[str, ...] = (), broken: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """A fake XVerse checkout in the real file formats, and a folder of prepared object/animal images."""
    xv, imgs = root / "XVerse", root / "dreambench"
    cases = {
        "single": [("a polar bear standing on iceberg", [("animal/13_polar bear.jpg", "polar bear", "a polar bear")]),
                   ("a man is riding a motorcycle", [("human/16_old man.jpg", "man", "an old man")])],
        "multi": [("A Siamese cat is lying beside a sneaker.", [("animal/21_Siamese cat.jpg", "Siamese cat", "a cat"),
                                                                ("object/22_sneaker.jpg", "sneaker", "a sneaker")])],
    }
    for split, items in cases.items():
        test_list, dsg = [], []
        for i, (prompt, refs) in enumerate(items):
            test_list.append({"index": i, "input_images": [], "position_delta": [0, -32], "prompt": prompt,
                              "modulation": [{"type": "adapter",
                                              "src_inputs": [{"image_path": f"assets/XVerseBench/{p}", "caption": c}
                                                             for p, _, c in refs],
                                              "use_words": [[k, w, w] for k, (_, w, _) in enumerate(refs)]}]})
            dsg.append({"prompt": prompt, "qid2tuple": {"1": "entity - whole", "2": "attribute - state"},
                        "qid2dependency": {"1": [0], "2": [1]},
                        "qid2question": {"1": f"Is there a {refs[0][1]}?", "2": "Is it standing?"}})
            for p, _, _ in refs:
                kind, name = p.split("/")
                folder = xv / "assets/XVerseBench/human" if kind == "human" else imgs / kind
                folder.mkdir(parents=True, exist_ok=True)
                if p in skip:
                    continue
                if p in broken:
                    (folder / name).write_bytes(b"not an image")
                else:
                    Image.new("RGB", (48, 48), (i * 40, 90, 200)).save(folder / name, format="JPEG")
        tools = xv / "eval/tools"
        tools.mkdir(parents=True, exist_ok=True)
        (tools / f"XVerseBench_{split}.json").write_text(json.dumps(test_list))
        (tools / f"XVerseBench_{split}_DSG.json").write_text(json.dumps(dsg))
    return xv, imgs


def test_prepare_builds_a_folder_the_tasks_read(tmp_path):
    xv, imgs = _checkout(tmp_path)
    out = prepare(xv, imgs, tmp_path / "prepared")
    index = json.loads((out / "xversebench.json").read_text())
    assert index["n_cases"] == {"single": 2, "multi": 1} and len(index["source"]["files_sha256"]) == 4
    rows = read_split(out, "single", task="xversebench_single")
    assert rows[1]["subjects"] == [{"image": "images/human/16_old man.jpg", "type": "human", "label": "man",
                                    "caption": "an old man"}]
    assert rows[0]["questions"][1] == {"id": "2", "question": "Is it standing?", "parents": ["1"],
                                       "tuple": "attribute - state"}
    multi = load_task("xversebench_multi", str(out))
    assert multi[0].prompt == "A Siamese cat is lying beside a sneaker."
    assert [s["label"] for s in multi[0].extra["subjects"]] == ["Siamese cat", "sneaker"]


def test_prepare_lists_every_missing_or_unreadable_image_and_writes_nothing(tmp_path):
    xv, imgs = _checkout(tmp_path, skip=("object/22_sneaker.jpg", "human/16_old man.jpg"),
                         broken=("animal/13_polar bear.jpg",))
    with pytest.raises(DataSourceError) as err:
        prepare(xv, imgs, tmp_path / "prepared")
    msg = str(err.value)
    assert "3 problem(s)" in msg and "nothing was written" in msg
    assert "single case 0: reference 0 (animal/13_polar bear.jpg) is unreadable" in msg
    assert "single case 1: reference 0 (human/16_old man.jpg) is missing" in msg
    assert "multi case 0: reference 1 (object/22_sneaker.jpg) is missing" in msg
    assert not (tmp_path / "prepared").exists()


def test_prepare_refuses_a_case_whose_dsg_prompt_differs(tmp_path):
    xv, imgs = _checkout(tmp_path)
    path = xv / "eval/tools/XVerseBench_multi_DSG.json"
    dsg = json.loads(path.read_text())
    dsg[0]["prompt"] = "something else"
    path.write_text(json.dumps(dsg))
    with pytest.raises(DataSourceError, match="multi case 0: cannot read the case.*prompt differs"):
        collect(xv, imgs)


def test_prepare_command_line(tmp_path, capsys):
    xv, imgs = _checkout(tmp_path)
    out = tmp_path / "out"
    assert main(["prepare", "xversebench", "--xverse", str(xv), "--images", str(imgs), "--output", str(out)]) == 0
    assert "--source" in capsys.readouterr().out
    assert main(["prepare", "xversebench", "--xverse", str(xv), "--images", str(imgs), "--output", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["prepare", "xversebench", "--xverse", str(tmp_path / "nope"), "--output", str(tmp_path / "o2")]) == 2
    assert "bytedance/XVerse" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("skimage") is None, reason="the sample is drawn from scikit-image's images")
def test_bundled_sample_is_what_the_builder_makes(tmp_path):
    spec = importlib.util.spec_from_file_location("build_xverse_sample", REPO / "scripts" / "build_xverse_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    built = module.build(tmp_path / "sample")
    for path in sorted(p for p in SAMPLE_ROOT.rglob("*") if p.is_file()):
        assert (built / path.relative_to(SAMPLE_ROOT)).read_bytes() == path.read_bytes(), path
    assert {p.relative_to(built) for p in built.rglob("*")} == {p.relative_to(SAMPLE_ROOT) for p in SAMPLE_ROOT.rglob("*")}


def test_micon_validate_decodes_every_sample_reference(capsys):
    assert main(["validate", "--tasks", "xversebench", "--source", "sample"]) == 0
    out = capsys.readouterr().out
    assert "xversebench_single                4      4" in out and "xversebench_multi                 3      7" in out
    ds = load_task("xversebench_multi", "sample").dataset
    assert all(ref["bytes"] for refs in ds.with_format("arrow")[:].column("refs").to_pylist() for ref in refs)


def test_lazy_cases_carry_subjects_and_questions_too():
    task = load_task("xversebench_multi", "sample")
    lazy = task.lazy_case(2)
    assert lazy.extra["subjects"] == task[2].extra["subjects"] and lazy.extra["questions"] == task[2].extra["questions"]
    assert lazy.refs[2].size == (160, 160)
