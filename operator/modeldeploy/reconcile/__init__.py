"""observe -> plan -> apply -> status, for one ModelDeployment. No kopf here."""
