"""Data sources: folder, Parquet (bytes, paths, HF struct), L3D; stable ids; streaming."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from image_corpus import encode, logo

from logosim.data.sources import (
    FolderSource,
    L3DSource,
    ParquetSource,
    SourceError,
    SourceSpec,
    detect_format,
    open_source,
)

COLOURS = [(255, 0, 0), (0, 128, 0), (0, 0, 255), (0, 0, 0), (200, 100, 0)]


def png(i: int) -> bytes:
    return encode(logo((24 + i, 24), COLOURS[i % len(COLOURS)]), "PNG")


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "logos"
    files = {
        "a.png": png(0),
        "b.JPG": encode(logo(), "JPEG"),
        "nested/deeper/c.webp": encode(logo(), "WEBP"),
        "nested/d.gif": encode(logo(), "GIF"),
        "nested/e.bmp": encode(logo(), "BMP"),
        "f.tif": encode(logo(), "TIFF"),
        "g.tiff": encode(logo(), "TIFF"),
        "h.jpeg": encode(logo(), "JPEG"),
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "notes.txt").write_text("ignored")
    (root / "nested" / "data.csv").write_text("ignored")
    (root / ".hidden.png").write_bytes(png(1))
    return root, files


def test_folder_is_recursive_and_keeps_only_image_suffixes(folder):
    root, files = folder
    source = open_source(str(root))
    assert isinstance(source, FolderSource)
    records = list(source.records())
    assert sorted(r.id for r in records) == sorted(files)
    assert len(source) == len(files)
    for record in records:
        assert record.data == files[record.id]
        assert record.sha256 == hashlib.sha256(files[record.id]).hexdigest()
        assert record.ref == str(root / record.id)


def test_folder_order_and_ids_are_stable(folder):
    root, _ = folder
    first = [(r.row, r.id, r.sha256) for r in open_source(str(root)).records()]
    again = [(r.row, r.id, r.sha256) for r in open_source(str(root)).records()]
    assert first == again
    assert [row for row, _, _ in first] == list(range(len(first)))


def test_folder_row_range_and_metadata_only(folder):
    root, _ = folder
    source = open_source(str(root))
    everything = [r.id for r in source.records()]
    part = list(source.records(2, 5, with_bytes=False))
    assert [r.id for r in part] == everything[2:5]
    assert [r.row for r in part] == [2, 3, 4]
    assert all(r.data == b"" and r.sha256 == "" for r in part)


def test_folder_fingerprint_changes_when_a_file_changes(folder):
    root, _ = folder
    before = dict(open_source(str(root)).fingerprints())
    (root / "a.png").write_bytes(png(3) + b"")
    after = dict(open_source(str(root)).fingerprints())
    assert before.keys() == after.keys()
    assert before["a.png"] != after["a.png"]
    assert all(before[k] == after[k] for k in before if k != "a.png")


def test_folder_group_from_subfolder(folder):
    root, _ = folder
    source = open_source(SourceSpec(path=str(root), group_column="folder"))
    groups = {r.id: r.group for r in source.records(with_bytes=False)}
    assert groups["nested/d.gif"] == "nested"
    assert groups["a.png"] is None


def _write_parquet(path, table: pa.Table, row_group_size: int | None = None) -> None:
    pq.write_table(table, path, row_group_size=row_group_size)


def test_parquet_binary_column_with_extra_metadata(tmp_path):
    images = [png(i) for i in range(5)]
    table = pa.table(
        {
            "id": [f"m{i}" for i in range(5)],
            "image": pa.array(images, pa.binary()),
            "text": ["ACME", None, "", "Bolt", None],
            "group": ["g1", "g1", None, "g2", ""],
            "vienna_codes": [["26.01.03", "27.05.01"], [], None, ["26.04.02"], []],
            "year": [2001, None, 1999, None, 2020],
            "owner": ["x", "y", "z", "w", "v"],
        }
    )
    _write_parquet(tmp_path / "marks.parquet", table)
    source = open_source(str(tmp_path / "marks.parquet"))
    assert isinstance(source, ParquetSource)
    records = list(source.records())
    assert [r.id for r in records] == ["m0", "m1", "m2", "m3", "m4"]
    assert [r.data for r in records] == images
    assert [r.text for r in records] == ["ACME", None, None, "Bolt", None]
    assert [r.group for r in records] == ["g1", "g1", None, "g2", None]
    assert records[0].vienna_codes == ("26.01.03", "27.05.01")
    assert records[0].vienna_top == ("26", "27")
    assert [r.year for r in records] == [2001, None, 1999, None, 2020]
    assert [r.extra for r in records] == [{"owner": o} for o in "xyzwv"]
    assert records[3].ref.endswith("marks.parquet#3")


def test_parquet_path_column_relative_to_file(tmp_path):
    (tmp_path / "img").mkdir()
    for i in range(3):
        (tmp_path / "img" / f"{i}.png").write_bytes(png(i))
    table = pa.table({"id": ["a", "b", "c"], "path": [f"img/{i}.png" for i in range(3)]})
    _write_parquet(tmp_path / "list.parquet", table)
    records = list(open_source(str(tmp_path / "list.parquet")).records())
    assert [r.data for r in records] == [png(i) for i in range(3)]
    assert records[1].ref == str(tmp_path / "img" / "1.png")


def test_parquet_missing_path_is_a_read_error_not_a_crash(tmp_path):
    table = pa.table({"id": ["a"], "path": ["img/missing.png"]})
    _write_parquet(tmp_path / "list.parquet", table)
    (record,) = open_source(str(tmp_path / "list.parquet")).records()
    assert record.read_error and record.data == b""


def test_parquet_hugging_face_image_struct(tmp_path):
    (tmp_path / "side.png").write_bytes(png(2))
    struct = pa.array(
        [
            {"bytes": png(0), "path": None},
            {"bytes": png(1), "path": "x.png"},
            {"bytes": None, "path": "side.png"},
        ],
        pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
    )
    table = pa.table({"image": struct, "label": [3, 4, 5]})
    _write_parquet(tmp_path / "hf.parquet", table)
    records = list(open_source(str(tmp_path / "hf.parquet")).records())
    assert [r.data for r in records] == [png(0), png(1), png(2)]
    assert [r.id for r in records] == ["0", "1", "2"]  # no id column: the row number
    assert [r.extra for r in records] == [{"label": 3}, {"label": 4}, {"label": 5}]


def test_parquet_custom_column_names(tmp_path):
    table = pa.table(
        {
            "mark_no": ["EU1", "EU2"],
            "picture": pa.array([png(0), png(1)], pa.binary()),
            "brand": ["A", "B"],
            "family": ["f", "f"],
        }
    )
    _write_parquet(tmp_path / "custom.parquet", table)
    spec = SourceSpec(
        path=str(tmp_path / "custom.parquet"),
        id_column="mark_no",
        image_column="picture",
        text_column="brand",
        group_column="family",
    )
    records = list(open_source(spec).records())
    assert [(r.id, r.text, r.group) for r in records] == [("EU1", "A", "f"), ("EU2", "B", "f")]
    assert records[0].data == png(0) and records[0].extra == {}


def test_parquet_unknown_column_is_a_clear_error(tmp_path):
    _write_parquet(tmp_path / "t.parquet", pa.table({"id": ["a"], "image": [png(0)]}))
    with pytest.raises(SourceError, match="group column 'family' not found"):
        open_source(SourceSpec(path=str(tmp_path / "t.parquet"), group_column="family"))


def test_parquet_streams_row_ranges_and_skips_row_groups(tmp_path, monkeypatch):
    n = 50
    table = pa.table({"id": [f"r{i}" for i in range(n)], "image": [png(i % 5) for i in range(n)]})
    _write_parquet(tmp_path / "big.parquet", table, row_group_size=10)
    source = open_source(str(tmp_path / "big.parquet"))
    assert source.file.num_row_groups == 5 and len(source) == n
    read_groups: list[int] = []
    real_iter = source.file.iter_batches

    def counting_iter(*args, **kwargs):
        read_groups.extend(kwargs["row_groups"])
        return real_iter(*args, **kwargs)

    monkeypatch.setattr(source.file, "iter_batches", counting_iter)
    stream = source.records(23, 37)
    assert isinstance(stream, Iterator)
    first = next(stream)
    assert (first.id, first.row) == ("r23", 23)
    assert read_groups == [2]  # groups 0 and 1 never read; nothing read ahead
    rest = list(stream)
    assert [r.id for r in rest] == [f"r{i}" for i in range(24, 37)]
    assert read_groups == [2, 3]


def test_parquet_one_huge_row_group_is_streamed_in_batches(tmp_path, monkeypatch):
    """pyarrow's default writes up to 1M rows per row group: a chunk must not read it whole."""
    n = 40
    table = pa.table({"id": [f"r{i}" for i in range(n)], "image": [png(i % 5) for i in range(n)]})
    _write_parquet(tmp_path / "one.parquet", table)
    source = open_source(str(tmp_path / "one.parquet"))
    assert source.file.num_row_groups == 1
    monkeypatch.setattr(type(source), "BATCH_ROWS", 8)
    monkeypatch.setattr(source.file, "read_row_group", None)  # reading a whole group fails
    chunks = [[r.id for r in source.records(start, start + 15)] for start in range(0, n, 15)]
    assert chunks == [[f"r{i}" for i in range(s, min(s + 15, n))] for s in range(0, n, 15)]


def test_parquet_metadata_only_does_not_read_image_column(tmp_path):
    table = pa.table({"id": ["a", "b"], "image": [png(0), png(1)], "text": ["x", None]})
    _write_parquet(tmp_path / "t.parquet", table)
    records = list(open_source(str(tmp_path / "t.parquet")).records(with_bytes=False))
    assert [(r.id, r.text, r.data) for r in records] == [("a", "x", b""), ("b", None, b"")]


@pytest.fixture
def l3d(tmp_path):
    root = tmp_path / "l3d"
    (root / "images").mkdir(parents=True)
    (root / "meta").mkdir()
    marks = {
        "000001.jpg": {"text": "ACME", "vienna_codes": ["26.01.03", "26.04.02"], "year": 2012},
        "000002.jpg": {"text": None, "vienna_codes": ["03.01.01"], "year": "2015"},
        "000003.jpg": {"text": "", "vienna_codes": [], "year": None},
    }
    for i, (name, meta) in enumerate(marks.items()):
        (root / "images" / name).write_bytes(encode(logo(colour=COLOURS[i]), "JPEG"))
        (root / "meta" / name.replace(".jpg", ".json")).write_text(
            json.dumps({"file": name, **meta})
        )
    (root / "images" / "000004.jpg").write_bytes(encode(logo(), "JPEG"))  # no metadata
    return root


def test_l3d_layout_is_detected_and_read(l3d):
    assert detect_format(l3d) == "l3d"
    source = open_source(str(l3d))
    assert isinstance(source, L3DSource)
    by_name = {r.id.split("/")[-1]: r for r in source.records()}
    assert set(by_name) == {"000001.jpg", "000002.jpg", "000003.jpg", "000004.jpg"}
    first = by_name["000001.jpg"]
    assert (first.text, first.vienna_codes, first.year) == (
        "ACME",
        ("26.01.03", "26.04.02"),
        2012,
    )
    assert first.vienna_top == ("26",)
    assert by_name["000002.jpg"].year == 2015
    assert by_name["000003.jpg"].text is None and by_name["000003.jpg"].year is None
    assert by_name["000004.jpg"].vienna_codes == () and by_name["000004.jpg"].data


def test_l3d_ids_are_stable_relative_paths(l3d):
    ids = [r.id for r in open_source(str(l3d)).records(with_bytes=False)]
    assert ids == [f"images/00000{i}.jpg" for i in range(1, 5)]


def test_unusable_sources_raise_source_error(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        open_source(str(tmp_path / "nope"))
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(SourceError, match=r"not a \.parquet"):
        open_source(str(tmp_path / "x.csv"))
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(SourceError, match="cannot read Parquet"):
        open_source(str(tmp_path / "bad.parquet"))
