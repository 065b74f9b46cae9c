"""The Kubernetes API: the only module that talks to the API server for core kinds."""
