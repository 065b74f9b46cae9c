"""Time as Kubernetes writes it: RFC 3339, UTC, whole seconds."""

from __future__ import annotations

from datetime import UTC, datetime


def timestamp(t: datetime) -> str:
    """RFC 3339 in UTC, second precision, as Kubernetes writes it."""
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str | None) -> datetime | None:
    """The inverse of timestamp(); None for missing or malformed text."""
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
