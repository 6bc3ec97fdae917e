"""Serve every logosim flow from one process: ``logosim serve`` (or ``python -m deployments.serve``).

Each flow gets a deployment named ``default`` (``build/default``, ``embed/default``, …) that
the Prefect UI's Run button triggers; ``reindex/nightly`` runs on a cron schedule whose
parameters (source, store) can be edited in the UI. This is the laptop route; for a work
pool and workers, deploy ``deployments/prefect.yaml`` instead (same names, same flows).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import typing
from collections.abc import Iterable
from typing import Any

from loguru import logger
from prefect import Flow, serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron
from pydantic import BaseModel, ValidationError

import flows  # noqa: F401  (Prefect's env defaults: tasks/_defaults.py)

# Flow name → "module:function". The same list as deployments/prefect.yaml (a test checks).
FLOWS: dict[str, str] = {
    "stats": "flows.stats:stats_flow",
    "splits": "flows.splits:splits_flow",
    "preprocess": "flows.preprocess:preprocess_flow",
    "embed": "flows.embed:embed_flow",
    "pca": "flows.pca:pca_flow",
    "index": "flows.index:index_flow",
    "build": "flows.build:build_flow",
    "evaluate": "flows.evaluate:evaluate_flow",
    "reindex": "flows.reindex:reindex_flow",
    "train": "flows.train:train_flow",
    "export": "flows.export:export_flow",
    "extract": "flows.extract:extract_flow",
}
# Stages still being written: served once their module exists, skipped (with a log) until then.
OPTIONAL = {"preprocess", "train", "export"}
REINDEX_CRON = "0 2 * * *"  # nightly at 02:00 in REINDEX_TIMEZONE
REINDEX_TIMEZONE = "UTC"
REINDEX_PARAMETERS: dict[str, Any] = {"source": {"path": "demo"}}  # edit in the UI
TAGS = ["logosim"]


def load_flow(name: str) -> Flow | None:
    module_name, attr = FLOWS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if name in OPTIONAL and exc.name == module_name:
            logger.info(f"serve: flow {name!r} not available yet ({module_name}); skipped")
            return None
        if (exc.name or "").partition(".")[0] in ("torch", "torchvision", "timm"):
            # a plain install (no train extra) serves every flow but training
            logger.info(
                f"serve: flow {name!r} needs PyTorch: pip install 'logosim[train]'; skipped"
            )
            return None
        raise
    return getattr(module, attr)


def form_defaults(flow: Flow) -> dict[str, Any]:
    """Each settings parameter (``params: BuildParams | None = None``) set to its default
    instance, so the UI's *Custom run* form opens on the fields, not on "None"."""
    defaults = {}
    hints = typing.get_type_hints(flow.fn)
    for name, parameter in inspect.signature(flow.fn).parameters.items():
        if parameter.default is not None:
            continue
        models = [a for a in typing.get_args(hints.get(name)) if _is_model(a)]
        if len(models) != 1:
            continue
        try:
            defaults[name] = models[0]().model_dump(mode="json")
        except ValidationError:  # not settings but a value with no default (PrepareSpec)
            continue
    return defaults


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def build_deployments(
    names: Iterable[str] | None = None,
    *,
    reindex_cron: str = REINDEX_CRON,
    reindex_parameters: dict[str, Any] | None = None,
    schedule_active: bool = True,
) -> list[RunnerDeployment]:
    """One ``default`` deployment per flow, plus the scheduled ``reindex/nightly``."""
    deployments = []
    for name in names or FLOWS:
        if name not in FLOWS:
            raise ValueError(f"unknown flow {name!r}; known: {', '.join(FLOWS)}")
        flow = load_flow(name)
        if flow is None:
            continue
        if name == "reindex":
            deployments.append(
                flow.to_deployment(
                    name="nightly",
                    schedule=Cron(reindex_cron, timezone=REINDEX_TIMEZONE),
                    paused=not schedule_active,
                    parameters=form_defaults(flow) | (reindex_parameters or REINDEX_PARAMETERS),
                    tags=TAGS,
                    description="Nightly: embed new/changed images, drop deleted ones, "
                    "update the index in place. Edit source/store in the UI.",
                )
            )
            continue
        deployments.append(
            flow.to_deployment(name="default", tags=TAGS, parameters=form_defaults(flow))
        )
    return deployments


def serve_all(
    names: Iterable[str] | None = None,
    *,
    reindex_cron: str = REINDEX_CRON,
    reindex_parameters: dict[str, Any] | None = None,
    schedule_active: bool = True,
    limit: int | None = None,
) -> None:
    """Block serving the deployments: runs triggered from the UI/API/schedule execute here."""
    deployments = build_deployments(
        names,
        reindex_cron=reindex_cron,
        reindex_parameters=reindex_parameters,
        schedule_active=schedule_active,
    )
    _ensure_gpu_slots()
    logger.info(f"serving {', '.join(d.flow_name + '/' + d.name for d in deployments)}")
    serve(*deployments, limit=limit)


def _ensure_gpu_slots() -> None:
    """On a GPU machine, create the `gpu` concurrency limit (one slot per GPU) if missing."""
    from logosim.embed.weight_files import torch_available

    if not torch_available():  # a plain install: its graphs run on the CPU or ONNX Runtime
        return
    import torch

    from tasks._gpu import ensure_gpu_limit

    if torch.cuda.is_available() and ensure_gpu_limit(torch.cuda.device_count()):
        logger.info(f"created the 'gpu' concurrency limit ({torch.cuda.device_count()} slots)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve logosim deployments.")
    parser.add_argument("flows", nargs="*", help=f"Flows to serve (default: all of {list(FLOWS)})")
    parser.add_argument("--reindex-cron", default=REINDEX_CRON)
    parser.add_argument("--pause-schedule", action="store_true")
    parser.add_argument("--limit", type=int, default=None, help="Max concurrent flow runs.")
    args = parser.parse_args(argv)
    serve_all(
        args.flows or None,
        reindex_cron=args.reindex_cron,
        schedule_active=not args.pause_schedule,
        limit=args.limit,
    )


if __name__ == "__main__":
    main()
