"""The comparator: a small server the operator runs beside a canary judged by a compare metric.

A mesh's mirror copies live requests to it (`<md>-mirror`); it sends each to both revisions' Services, answers
with the canary's answer (which the mesh drops: the client got stable's), and counts the predictions that differ.
The operator reads the counts from its stats port. It runs from the operator's own image (`modeldeploy compare`),
so a platform team ships and trusts one image. `agreement` is the pure comparison, `server` the HTTP around it.
"""

# Mirrored requests come in here, on every path the model server has.
TRAFFIC_PORT = 8080
# The comparator's own endpoints (/healthz, /agreement, /metrics), apart from the model's paths.
STATS_PORT = 9090
AGREEMENT_PATH = "/agreement"
