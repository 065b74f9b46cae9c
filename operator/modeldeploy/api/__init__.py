"""The ModelDeployment API: pydantic models, names, conditions, the CRD schema."""
