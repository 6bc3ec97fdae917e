"""The artifact store: atomic writes, manifests, integrity checks, disk-space pre-flight."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from logosim.core.failures import ImageFailure, collect_errors, read_errors, write_chunk_errors
from logosim.core.records import LogoRecord
from logosim.core.store import (
    ArtifactStore,
    CorruptArtifactError,
    DiskSpaceError,
    Manifest,
    StoreError,
    ensure_free_space,
)


def test_write_bytes_publishes_file_and_manifest(store):
    manifest = store.write_bytes(
        "a/b.bin", b"hello", kind="blob", rows=1, versions={"code": "1"}, meta={"k": "v"}
    )
    assert manifest.path == "a/b.bin"
    assert manifest.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert (manifest.size, manifest.rows, manifest.kind) == (5, 1, "blob")
    assert store.path("a/b.bin").read_bytes() == b"hello"
    sidecar = json.loads(store.manifest_path("a/b.bin").read_text())
    assert Manifest.model_validate(sidecar) == manifest
    assert store.read_manifest("a/b.bin") == manifest
    assert store.read_bytes(manifest) == b"hello"


def test_json_and_arrays_round_trip(store):
    obj = {"b": [1, 2], "a": "x"}
    assert store.read_json(store.write_json("x.json", obj)) == obj
    arrays = {"ids": np.array(["a", "b"]), "embeddings": np.eye(2, dtype=np.float32)}
    back = store.read_arrays(store.write_arrays("e.npz", arrays, rows=2))
    assert back.keys() == arrays.keys()
    for name in arrays:
        np.testing.assert_array_equal(back[name], arrays[name])
        assert back[name].dtype == arrays[name].dtype


def test_failed_writer_leaves_nothing_behind(store):
    store.write_bytes("keep.bin", b"old", kind="blob")

    def broken(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        store.write_with("keep.bin", broken, kind="blob")
    with pytest.raises(RuntimeError):
        store.write_with("new.bin", broken, kind="blob")
    assert store.path("keep.bin").read_bytes() == b"old"  # the old version survives whole
    assert not store.path("new.bin").exists()
    assert not list(store.root.glob(".*.tmp"))


def test_verify_catches_truncation_tampering_and_loss(store):
    manifest = store.write_bytes("v.bin", b"0123456789", kind="blob")
    assert store.verify(manifest)
    store.path("v.bin").write_bytes(b"0123456789"[:5])
    assert not store.verify(manifest)
    store.path("v.bin").write_bytes(b"012345678X")  # same size, different bytes
    assert store.verify(manifest, checksum=False)
    assert not store.verify(manifest)
    with pytest.raises(CorruptArtifactError, match="fails its checksum"):
        store.read_bytes(manifest)
    assert store.load_verified("v.bin") is None
    store.path("v.bin").unlink()
    with pytest.raises(CorruptArtifactError, match="missing"):
        store.require(manifest)


def test_load_verified_returns_intact_artifacts(store):
    manifest = store.write_json("ok.json", {"a": 1})
    assert store.load_verified("ok.json") == manifest
    assert store.load_verified("never-written.json") is None


def test_paths_cannot_escape_the_root(store):
    with pytest.raises(StoreError, match="escapes"):
        store.path("../outside.bin")


def test_disk_space_preflight_has_an_actionable_message(tmp_path):
    with pytest.raises(DiskSpaceError, match=r"not enough disk space.*LOGOSIM_STORE"):
        ensure_free_space(tmp_path, needed_bytes=2**62)
    ensure_free_space(tmp_path, needed_bytes=1)
    store = ArtifactStore(tmp_path / "s", reserve_bytes=2**62)
    with pytest.raises(DiskSpaceError):
        store.write_bytes("big.bin", b"x" * 10, kind="blob")
    assert not store.path("big.bin").exists()


def test_chunk_errors_are_collected_once_per_chunk(store):
    record = LogoRecord(id="m1", ref="/data/m1.png", row=0)
    first = [ImageFailure.of(record, "stats", "truncated", "EOF")]
    write_chunk_errors(store, "stats", "chunk-00000", first)
    write_chunk_errors(store, "stats", "chunk-00000", first)  # a recomputed chunk replaces
    other = LogoRecord(id="m2", ref="/data/m2.png", row=1)
    write_chunk_errors(store, "embed", "chunk-00000", [ImageFailure.of(other, "embed", "empty")])
    path = collect_errors(store)
    assert path == store.path("errors.jsonl")
    errors = read_errors(store)
    assert [(e.id, e.stage, e.reason, e.source) for e in errors] == [
        ("m2", "embed", "empty", "/data/m2.png"),
        ("m1", "stats", "truncated", "/data/m1.png"),
    ]
    collect_errors(store, stages=["stats"])
    assert [e.id for e in read_errors(store)] == ["m1"]
