"""The export flow: weights (+ PCA) → one ONNX file, validated on real logos, with a report."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from logosim.core.settings import get_settings
from logosim.core.store import Manifest
from logosim.embed.export_params import ExportParams
from tasks.export import export_embedding_model


@flow(name="export", log_prints=True)
def export_flow(store: str | None = None, params: ExportParams | None = None) -> Manifest:
    store = store or str(get_settings().store.expanduser().resolve())
    model = export_embedding_model(store, params or ExportParams())
    report = model.meta
    create_markdown_artifact(
        f"# ONNX export ({report['precision']})\n"
        f"- `{model.path}`: **{report['size_mb']:.1f} MB**, {report['dim']} dims, "
        f"PCA {report['pca']}, weights `{report['weights']}`\n"
        f"- agreement with PyTorch on {report['validated_images']} logos "
        f"({report['validated_on']}): min cosine **{report['min_cosine']}**, "
        f"mean {report['mean_cosine']}\n"
        f"- speed: {report.get('throughput_img_s')} img/s",
        key="export-report",
        description="ONNX export report",
    )
    return model
