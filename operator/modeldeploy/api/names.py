"""Names of the API and the labels and annotations the operator owns."""

GROUP = "modeldeploy.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ["md"]
# Cluster-scoped: an analysis endpoint the platform admin names (api/provider.py).
PROVIDER_KIND = "AnalysisProvider"
PROVIDER_PLURAL = "analysisproviders"
PROVIDER_SINGULAR = "analysisprovider"

FIELD_MANAGER = "modeldeploy"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "modeldeploy"
LABEL_MD = f"{GROUP}/name"
LABEL_REVISION = f"{GROUP}/revision"
LABEL_REVISION_HASH = f"{GROUP}/revision-hash"
# On the comparator's pods instead of LABEL_MD, which every serving Service selects on: they serve no client.
LABEL_MIRROR_OF = f"{GROUP}/mirror-of"

ANN_MODEL_VERSION = f"{GROUP}/model-version"
ANN_OUTCOME = f"{GROUP}/outcome"
ANN_OUTCOME_REASON = f"{GROUP}/outcome-reason"
ANN_SCALE_DOWN_AT = f"{GROUP}/scale-down-at"
ANN_SUPERSEDED_AT = f"{GROUP}/superseded-at"  # when the revision stopped serving: the last one is kept warm
# On each revision Deployment: the serving template it runs (JSON), so lost history can be rebuilt from it.
ANN_SERVING_TEMPLATE = f"{GROUP}/serving-template"
# On a failed or aborted revision: the spec has since asked for another one, so
# asking for it again is a new attempt.
ANN_RELEASED = f"{GROUP}/released"

MODEL_MOUNT_PATH = "/mnt/models"

# Held while the operator manages weights on a user's route, so deleting the ModelDeployment takes them off first.
FINALIZER = f"{GROUP}/route-weights"

# The longest ModelDeployment name whose children's names are valid: `<md>-canary` and `<md>-stable` are
# Services, whose names are DNS-1035 labels of at most 63 characters (a letter first).
MAX_NAME_LENGTH = 63 - len("-stable")
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAME_MESSAGE = (f"metadata.name must be at most {MAX_NAME_LENGTH} characters of a-z, 0-9 and '-', starting with "
                f"a letter: the operator names Services <name>-stable and <name>-canary, and a Service name is "
                f"a DNS label of at most 63 characters")


def deployment_name(md: str, revision: int) -> str:
    """The Deployment that runs one revision."""
    return f"{md}-r{revision}"


def mirror_name(md: str) -> str:
    """The comparator's Deployment and Service, which a compare rollout's mirror steps copy requests to (no longer
    than `-stable`, so every name a valid ModelDeployment name makes is a valid Service name)."""
    return f"{md}-mirror"


def base_labels(md: str) -> dict[str, str]:
    """Labels on every object the operator creates for a ModelDeployment."""
    return {LABEL_NAME: md, LABEL_MANAGED_BY: MANAGED_BY, LABEL_MD: md}
