"""Operator-wide settings that shape what the builders produce."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    # Fetches model.uri into the shared model volume before the server starts
    # (the storage-initializer pattern); its args are `<uri> <dest-dir>`.
    storage_initializer_image: str = "docker.io/kserve/storage-initializer:v0.14.1"
    # A canary pod restarting this often has crashed for good: roll back.
    crash_restart_limit: int = 3
