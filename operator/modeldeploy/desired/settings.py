"""Operator-wide settings that shape what the builders produce."""

from __future__ import annotations

from dataclasses import dataclass

from modeldeploy import __version__

# The operator's own image (the Helm chart's default): the comparator runs `modeldeploy compare` from it.
COMPARATOR_IMAGE = f"ghcr.io/modeldeploy/modeldeploy:{__version__}"


@dataclass(frozen=True)
class Settings:
    # Fetches model.uri into the shared model volume before the server starts
    # (the storage-initializer pattern); its args are `<uri> <dest-dir>`.
    storage_initializer_image: str = "docker.io/kserve/storage-initializer:v0.21.0"
    # What the comparator of a compare metric runs (`modeldeploy compare`): the operator's own image.
    comparator_image: str = COMPARATOR_IMAGE
    # A canary pod restarting this often has crashed for good: roll back.
    crash_restart_limit: int = 3
    # Analysis URLs written in a ModelDeployment (prometheus.address, webhook.url) are reached only when the
    # platform turned this on (`run --allow-inline-analysis-urls`); otherwise metrics name an AnalysisProvider.
    allow_inline_analysis_urls: bool = False
    # Where AnalysisProviders' bearerTokenSecrets live: the operator's own namespace ($POD_NAMESPACE in a pod).
    own_namespace: str = ""
