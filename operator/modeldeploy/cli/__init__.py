"""Command line: the operator process and the kubectl plugin."""
