"""Fault injection for end-to-end tests: make one chunk fail once with a transient I/O error.

Set ``LOGOSIM_FAULT_ONCE`` to the path of a marker file. The first call of
``raise_fault_once(site)`` whose ``site`` starts with the marker's content (``embed`` matches
``embed:chunk-00001``; an empty marker matches any site) removes the marker and raises ``OSError``; later calls do nothing. Removing
the file is the "once": it works across processes and Dask workers sharing a filesystem,
so a retried task finds the marker gone and succeeds. Unset (the default), it costs one
environment lookup.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

FAULT_ENV = "LOGOSIM_FAULT_ONCE"


class InjectedFault(OSError):
    """The transient I/O error raised on purpose; retry conditions treat it as any OSError."""


def raise_fault_once(site: str) -> None:
    """Raise ``InjectedFault`` if a fault marker for ``site`` is armed, disarming it."""
    marker = os.environ.get(FAULT_ENV)
    if not marker:
        return
    path = Path(marker)
    try:
        wanted = path.read_text(encoding="utf-8").strip()
    except OSError:
        return  # no marker: nothing armed (or already fired)
    if wanted and not site.startswith(wanted):
        return
    try:
        path.unlink()  # only one caller wins the unlink, so only one fault fires
    except FileNotFoundError:
        return
    raise InjectedFault(errno.EIO, f"injected transient I/O error at {site} ({FAULT_ENV})")


def arm_fault(marker: Path | str, site: str = "") -> Path:
    """Arm a one-shot fault for ``site`` (any site when empty); used by tests and drills."""
    path = Path(marker)
    path.write_text(site, encoding="utf-8")
    return path
