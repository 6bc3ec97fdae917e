"""``logosim verify`` / ``gc``: damaged artifacts found, leftovers and orphans cleaned (issue 18)."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from flows.cli import app
from logosim.core.store import ArtifactStore
from logosim.core.verify import collect_garbage, verify_store


def _store_with_artifacts(root) -> ArtifactStore:
    store = ArtifactStore(root)
    for n in range(3):
        store.write_arrays(f"embeddings/e{n}.npz", {"x": np.full(64, n)}, kind="embeddings", rows=1)
    store.write_json("eval/metrics.json", {"recall@1": 0.5}, kind="metrics")
    (store.root / "_prefect" / "results").mkdir(parents=True)
    (store.root / "_prefect" / "results" / "abc").write_text("prefect's own")
    return store


def test_healthy_store_passes_and_has_nothing_to_collect(tmp_path):
    store = _store_with_artifacts(tmp_path / "s")
    report = verify_store(store)
    assert report.ok and report.checked == 4
    assert (report.leftovers, report.orphans, report.stale) == ([], [], [])
    result = CliRunner().invoke(app, ["verify", "--store", str(store.root)])
    assert result.exit_code == 0, result.output
    assert "4 artifacts checked, 0 damaged" in result.output


def test_flipped_truncated_and_deleted_artifacts_are_damage(tmp_path):
    store = _store_with_artifacts(tmp_path / "s")
    flipped = store.path("embeddings/e0.npz")
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    truncated = store.path("embeddings/e1.npz")
    truncated.write_bytes(truncated.read_bytes()[:-10])
    store.path("eval/metrics.json").unlink()
    report = verify_store(store)
    assert report.damaged == {
        "embeddings/e0.npz": "sha256 differs from the manifest",
        "embeddings/e1.npz": f"size {truncated.stat().st_size} bytes, manifest says "
        f"{truncated.stat().st_size + 10}",
        "eval/metrics.json": "file missing",
    }
    assert verify_store(store, checksum=False).damaged.keys() == {
        "embeddings/e1.npz",
        "eval/metrics.json",
    }  # --quick compares sizes only
    result = CliRunner().invoke(app, ["verify", "--store", str(store.root)])
    assert result.exit_code == 1
    assert "damaged  embeddings/e0.npz: sha256 differs" in result.output


def test_gc_lists_then_removes_leftovers_orphans_and_stale_chunks(tmp_path):
    store = _store_with_artifacts(tmp_path / "s")
    leftover = store.path("embeddings/.e9.npz.abc123.tmp")
    leftover.write_bytes(b"half written")
    orphan = store.path("eval/notes.txt")
    orphan.write_text("no manifest")
    # an index built from e0 and e1 only: e2 is stale
    used = [store.read_manifest(f"embeddings/e{n}.npz").sha256 for n in (0, 1)]
    store.write_bytes("index/index.faiss", b"faiss", kind="index", meta={"embeddings": used})

    report = verify_store(store)
    assert report.ok
    assert report.leftovers == ["embeddings/.e9.npz.abc123.tmp"]
    assert report.orphans == ["eval/notes.txt"]
    assert report.stale == ["embeddings/e2.npz"]

    runner = CliRunner()
    dry = runner.invoke(app, ["gc", "--store", str(store.root)])
    assert dry.exit_code == 0 and "1 file(s) to remove" in dry.output  # the leftover alone
    assert leftover.exists() and orphan.exists()  # a dry run by default

    done = runner.invoke(
        app, ["gc", "--store", str(store.root), "--orphans", "--stale", "--delete"]
    )
    assert done.exit_code == 0, done.output
    assert not leftover.exists() and not orphan.exists()
    assert not store.path("embeddings/e2.npz").exists()
    assert store.path("embeddings/e0.npz").exists()
    assert (store.root / "_prefect" / "results" / "abc").exists()  # Prefect's, never touched
    after = verify_store(store)
    assert after.ok and (after.leftovers, after.orphans, after.stale) == ([], [], [])
    assert collect_garbage(store, after, orphans=True, stale=True) == []
