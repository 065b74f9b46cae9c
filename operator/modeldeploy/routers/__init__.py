"""Traffic routers: one Protocol, one module per router, a registry that rejects unknown names."""
