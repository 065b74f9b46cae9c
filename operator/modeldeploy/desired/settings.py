"""Operator-wide settings that shape what the builders produce."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    # Fetches model.uri into the shared model volume before the server starts
    # (the storage-initializer pattern); its args are `<uri> <dest-dir>`.
    storage_initializer_image: str = "docker.io/kserve/storage-initializer:v0.21.0"
    # A canary pod restarting this often has crashed for good: roll back.
    crash_restart_limit: int = 3
    # Analysis URLs written in a ModelDeployment (prometheus.address, webhook.url) are reached only when the
    # platform turned this on (`run --allow-inline-analysis-urls`); otherwise metrics name an AnalysisProvider.
    allow_inline_analysis_urls: bool = False
    # Where AnalysisProviders' bearerTokenSecrets live: the operator's own namespace ($POD_NAMESPACE in a pod).
    own_namespace: str = ""
