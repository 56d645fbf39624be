"""Broken reference images and unsafe published rows (issue 11, items 4, 5 and 9): each is refused naming
the task, the case and the field, up front; high-bit-depth greyscale is scaled, never turned white."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from raw_fixture import make_raw

from micon_tasks.cli import main
from micon_tasks.errors import CaseValidationError
from micon_tasks.images import to_rgb
from micon_tasks.task import load_task

CASE = "foreground_background_composition_001"
REF = "data/foreground_background_composition/refs/foreground_background_composition_001_RA.png"


@pytest.fixture
def raw(tmp_path, monkeypatch):
    monkeypatch.setenv("MICON_CACHE_DIR", str(tmp_path / "cache"))
    return make_raw(tmp_path / "raw")


def _png_with_bad_zlib_but_valid_crcs() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buf, format="PNG")
    data, out, pos = buf.getvalue(), bytearray(), 8
    out += data[:8]
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], bytearray(data[pos + 8 : pos + 8 + length])
        if kind == b"IDAT":
            body[len(body) // 2] ^= 0xFF  # corrupt the deflate stream, then give the chunk a correct CRC
        out += struct.pack(">I", length) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        pos += 12 + length
    return bytes(out)


@pytest.mark.parametrize("broken", ["truncated_jpeg", "bad_zlib_png"])
def test_a_reference_that_cannot_be_decoded_is_named_when_the_task_loads(raw, broken, capsys):
    target = raw / REF
    if broken == "truncated_jpeg":
        buf = io.BytesIO()
        Image.new("RGB", (64, 64), "blue").save(buf, format="JPEG")
        target.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    else:
        target.write_bytes(_png_with_bad_zlib_but_valid_crcs())
    if broken == "bad_zlib_png":
        with Image.open(target) as im:
            im.verify()  # what the old check ran: it passes
    with pytest.raises(CaseValidationError, match=rf"case '{CASE}', field 'refs.RA'.*not a readable image"):
        load_task("fgbg_composition", str(raw)).dataset
    code = main(["validate", "--tasks", "fgbg_composition", "--source", str(raw)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("micon: error:") == 1 and CASE in err and "Traceback" not in err


def test_16_bit_greyscale_is_scaled_not_white(raw):
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    Image.fromarray(ramp).save(raw / REF)
    with Image.open(raw / REF) as im:
        assert im.mode.startswith("I")
        assert (np.asarray(im.convert("RGB")) == 255).mean() > 0.9  # convert("RGB") alone: nearly all white
    case = load_task("fgbg_composition", str(raw)).case(CASE)
    pixels = np.asarray(case.refs[0])[..., 0].astype(int)
    expected = np.clip(ramp / 65535 * 255 + 0.5, 0, 255).astype(int)
    assert np.array_equal(pixels, expected) and pixels.min() == 0 and pixels.max() == 255


def test_float_and_32_bit_modes_are_scaled():
    f = Image.fromarray(np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4), mode="F")
    assert np.asarray(to_rgb(f))[..., 0].tolist()[0] == [0, 17, 34, 51]
    i = Image.fromarray(np.array([[0, 65535]], dtype=np.int32), mode="I")
    assert np.asarray(to_rgb(i))[..., 0].tolist() == [[0, 255]]


def test_published_reference_without_bytes_is_refused(tmp_path, monkeypatch):
    import datasets

    from micon_tasks.data.sources import features

    monkeypatch.setenv("MICON_CACHE_DIR", str(tmp_path / "cache"))
    sample = load_task("fgbg_composition", "sample")
    rows = sample.dataset.cast_column("refs", datasets.List(datasets.Image(decode=False))).to_list()
    rows[1]["refs"][0] = {"bytes": None, "path": "/etc/passwd"}
    folder = tmp_path / "pub" / "data" / "fgbg_composition"
    folder.mkdir(parents=True)
    ds = datasets.Dataset.from_list(rows, features=features())
    ds.to_parquet(str(folder / "test-00000.parquet"))
    cid = rows[1]["case_id"]
    with pytest.raises(CaseValidationError, match=rf"case '{cid}', field 'refs.RA'.*no image bytes"):
        load_task("fgbg_composition", str(tmp_path / "pub")).dataset


def test_a_cache_folder_left_by_another_converter_version_is_replaced(raw):
    """A conversion folder without the completion marker (another version's format, or a crash) is never read."""
    from micon_tasks.data.raw import find_raw_root
    from micon_tasks.data.sources import _fingerprint, cache_dir

    cfg = load_task("fgbg_composition", str(raw)).config
    target = cache_dir() / "converted" / f"fgbg_composition-{_fingerprint(find_raw_root(raw, [cfg.official_folder]), cfg)}"
    (target / "data").mkdir(parents=True)
    (target / "state.json").write_text("{}")
    assert len(load_task("fgbg_composition", str(raw))) == 2
    assert (target / "converted.ok").is_file() and not (target / "state.json").exists()
