"""The one content digest: settings versions and cache keys are sha256 of a stable JSON dump.

No module or class path enters it, so moving code never changes a cache key.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel


def stable_digest(*parts: Any) -> str:
    """sha256 of JSON-serialised parts (pydantic models by their dump): settings versions."""
    payload = json.dumps(
        [p.model_dump(mode="json") if isinstance(p, BaseModel) else p for p in parts],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()
