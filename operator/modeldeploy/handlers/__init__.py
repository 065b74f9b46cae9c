"""Thin kopf glue: every trigger calls the one reconcile."""
