"""Pure builders and planners: spec and observed facts in, manifests and status out."""
