"""Runtime presets: model servers the operator knows how to run."""

from __future__ import annotations

from dataclasses import dataclass

from modeldeploy.api.spec import Runtime, Startup

DEFAULT_PORT = 8080
DEFAULT_READINESS_PATH = "/v2/health/ready"
# A preset's server loads a model before it answers; KServe's own servers moved to a 10-minute startup probe
# (kserve#5062) after large models were killed mid-load.
PRESET_STARTUP = Startup(timeout_seconds=600, period_seconds=10)


@dataclass(frozen=True)
class Preset:
    image: str
    port: int
    readiness_path: str
    args: tuple[str, ...] = ()
    # Where the server exports its Prometheus metrics when that is a port of its own; the pods
    # declare it as the container port `metrics`, for a PodMonitor or a scrape job to select.
    metrics_port: int | None = None
    # The pods run as non-root, and the kubelet refuses an image whose USER is a name it cannot
    # check or root: such an image's non-root user, by number.
    run_as_user: int | None = None


# Images are the upstream servers' public ones; a platform can pin others by
# setting runtime.image instead. Metrics ports are each server's default.
# Only mlserver is started by the tests (on the real node, under Pod Security "restricted");
# docs/serving.md says what is known of the others.
PRESETS: dict[str, Preset] = {
    "mlserver": Preset("docker.io/seldonio/mlserver:1.6.1", 8080, "/v2/health/ready", metrics_port=8082),
    # The image's non-root user triton-server is uid 1000; its USER stays root.
    "triton": Preset("nvcr.io/nvidia/tritonserver:24.08-py3", 8000, "/v2/health/ready",
                     ("tritonserver", "--model-repository=/mnt/models"), metrics_port=8002, run_as_user=1000),
    # USER model-server: a name, which the kubelet cannot check against runAsNonRoot.
    "torchserve": Preset("docker.io/pytorch/torchserve:0.12.0-cpu", 8080, "/ping", metrics_port=8082,
                         run_as_user=1000),
    # vLLM serves /metrics on its API port. Its image runs as root and fails as any other uid
    # (torch asks for the user's name): it needs an image built with a non-root user.
    "vllm": Preset("docker.io/vllm/vllm-openai:v0.6.3", 8000, "/health", ("--model", "/mnt/models")),
}


class UnknownPreset(ValueError):
    """spec.runtime.preset names no preset the operator knows."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"spec.runtime.preset: {name!r} is not a known runtime preset; use one of "
            f"{', '.join(sorted(PRESETS))}, or set spec.runtime.image to your own server image")


@dataclass(frozen=True)
class ResolvedRuntime:
    image: str
    port: int
    readiness_path: str
    args: tuple[str, ...]
    metrics_port: int | None = None
    run_as_user: int | None = None
    startup: Startup | None = None


def resolve(runtime: Runtime) -> ResolvedRuntime:
    """The image, port, probe path and args to run, with preset defaults filled in."""
    if runtime.preset is not None:
        preset = PRESETS.get(runtime.preset)
        if preset is None:
            raise UnknownPreset(runtime.preset)
        return ResolvedRuntime(
            image=preset.image,
            port=runtime.port or preset.port,
            readiness_path=runtime.readiness_path or preset.readiness_path,
            args=tuple(runtime.args) if runtime.args is not None else preset.args,
            metrics_port=preset.metrics_port if preset.metrics_port != (runtime.port or preset.port) else None,
            run_as_user=preset.run_as_user,
            startup=runtime.startup or PRESET_STARTUP,
        )
    assert runtime.image is not None  # the spec model guarantees image or preset
    return ResolvedRuntime(
        image=runtime.image,
        port=runtime.port or DEFAULT_PORT,
        readiness_path=runtime.readiness_path or DEFAULT_READINESS_PATH,
        args=tuple(runtime.args or ()),
        startup=runtime.startup,
    )
