"""Revision identity: the hash of everything that changes pods."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def template_hash(serving_template: dict[str, Any]) -> str:
    """A short stable hash of a serving template (model, runtime, pod overrides)."""
    canonical = json.dumps(serving_template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]
