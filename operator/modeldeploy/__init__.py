"""modeldeploy: a Kubernetes operator for ML model deployments."""

__version__ = "0.1.0"
