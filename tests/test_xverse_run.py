"""End to end: `micon run --model collage --tasks xversebench --source sample --judge xversebench` with tiny
random DINO / SigLIP / IR-SE models, stub detectors and the tiny hf judge answering DPG (scores MEAN NOTHING)."""

from __future__ import annotations

import json

import pytest

from micon_tasks.cli import main
from micon_tasks.suites.xversebench.testing import build_tiny_dino, build_tiny_siglip, save_random_aes_head

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def judge_args(tmp_path_factory):
    root = tmp_path_factory.mktemp("xverse_run_models")
    save_random_aes_head(root / "head.pth")
    return json.dumps({
        "device": "cpu", "vqa": "hf", "vqa_args": "pretrained=micon-tiny-random;mode=logits;device=cpu",
        "face_weights": "micon-random", "face_units": "1-1-1-1", "face_detector": "micon-stub",
        "detector": "micon-stub", "segmenter": "micon-stub", "dino": str(build_tiny_dino(root / "dino")),
        "siglip": str(build_tiny_siglip(root / "siglip")), "aes_head": str(root / "head.pth"), "aes_dtype": "float32",
    })


def test_micon_run_on_the_xversebench_sample(tmp_path, judge_args, monkeypatch):
    monkeypatch.setenv("MICON_CACHE_DIR", str(tmp_path / "cache"))
    argv = ["run", "--model", "collage", "--tasks", "xversebench", "--source", "sample", "--judge", "xversebench",
            "--judge_args", judge_args, "--output_path", str(tmp_path / "out"), "--no_progress"]
    assert main(argv) == 0
    run = tmp_path / "out" / "collage"
    results = json.loads((run / "results.json").read_text())
    suite = results["suites"]["xversebench"]
    assert suite["kind"] == "metrics" and suite["tasks"] == ["xversebench_single", "xversebench_multi"]
    single = results["results"]["xversebench_single"]
    assert single["n_cases"] == 4 and single["n_failed"] == 0 and single["n_checkpoint_errors"] == 0
    assert single["images_per_case"] == [4] and single["aes_on"] == ["grid"]  # the card's num_images: 4
    # 4 cases x 4 images: one DPG entry per image, ID / IP per (image, reference), AES per case (2x2 grid)
    assert single["entries"] == {"DPG": 16, "ID": 4, "IP": 12, "AES": 4}
    assert len(list((run / "images" / "xversebench_single").glob("single_000*.png"))) == 4
    assert all(v is not None for v in single["metrics"].values())
    assert suite["headline"]["name"] == "Overall"
    assert suite["headline"]["value"] == pytest.approx(
        (results["results"]["xversebench_single"]["avg"] + results["results"]["xversebench_multi"]["avg"]) / 2)
    md = (run / "results.md").read_text()
    assert "## XVerseBench" in md and "| collage |" in md and "MEAN NOTHING" in md and "not comparable" in md
    # a second run resumes: nothing new is generated or judged, and the figures are the same
    assert main(argv) == 0
    again = json.loads((run / "results.json").read_text())
    assert again["suites"]["xversebench"]["table"] == suite["table"]
