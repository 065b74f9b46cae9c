"""AnalysisProvider (v1alpha1, cluster-scoped): an analysis endpoint the platform owns.

Analysis endpoints are the platform's, not the tenant's. A platform admin
creates one AnalysisProvider per Prometheus (address, credentials, CA, headers)
and per webhook service (a base URL); a ModelDeployment's metric names one. The
operator then reaches only the addresses admins wrote down: a tenant who may
create ModelDeployments cannot point the operator at another host inside the
platform's network. URLs written in a ModelDeployment itself are used only when
the operator runs with `--allow-inline-analysis-urls`.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from modeldeploy.api.spec import DNS_SUBDOMAIN_PATTERN, _cel, _Model

# An absolute http(s) URL with a host, and nothing a path could be appended to ambiguously: no query, no
# fragment, no user info (a `?` or `#` in a base would swallow the path the operator appends to it).
BASE_URL_PATTERN = r"^https?://[^\s/?#@]+(/[^\s?#]*)?$"
HEADER_NAME_PATTERN = r"^[A-Za-z0-9-]{1,256}$"
MAX_HEADERS = 16
# Set by the operator itself (Authorization from bearerTokenSecret).
RESERVED_HEADERS = ("host", "authorization", "content-length", "content-type")
RESERVED_HEADERS_MESSAGE = ("headers may not set Host, Authorization, Content-Length or Content-Type: credentials go "
                            "in bearerTokenSecret")


class SecretKeyRef(_Model):
    """One key of a Secret in the operator's own namespace: the only Secrets the operator may read there, and
    never a tenant's."""

    name: Annotated[str, Field(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)]
    key: Annotated[str, Field(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)]


class Endpoint(_Model):
    """How the operator reaches one analysis backend."""

    model_config = ConfigDict(json_schema_extra=_cel(
        ("!has(self.headers) || self.headers.all(k, k.matches('^[A-Za-z0-9-]{1,256}$'))",
         "header names are letters, digits and dashes"),
        ("!has(self.headers) || !self.headers.exists(k, k.lowerAscii() in ['host', 'authorization', "
         "'content-length', 'content-type'])", RESERVED_HEADERS_MESSAGE),
    ))

    bearer_token_secret: SecretKeyRef | None = None
    ca_bundle: Annotated[str | None, Field(max_length=65536)] = None
    # e.g. X-Scope-OrgID: $namespace, for a label proxy that scopes each tenant to its own series.
    headers: Annotated[dict[str, Annotated[str, Field(max_length=1024)]] | None,
                       Field(max_length=MAX_HEADERS)] = None

    @model_validator(mode="after")
    def _headers(self) -> Endpoint:
        for k in self.headers or {}:
            if not re.fullmatch(HEADER_NAME_PATTERN, k):
                raise ValueError(f"header name {k!r}: header names are letters, digits and dashes")
            if k.lower() in RESERVED_HEADERS:
                raise ValueError(f"header {k}: {RESERVED_HEADERS_MESSAGE}")
        return self


class PrometheusEndpoint(Endpoint):
    address: Annotated[str, Field(pattern=BASE_URL_PATTERN, max_length=2048)]


class WebhookEndpoint(Endpoint):
    base_url: Annotated[str, Field(alias="baseURL", pattern=BASE_URL_PATTERN, max_length=2048)]


class AnalysisProviderSpec(_Model):
    model_config = ConfigDict(json_schema_extra=_cel(
        ("has(self.prometheus) != has(self.webhook)", "an AnalysisProvider takes exactly one of prometheus or "
                                                      "webhook"),
    ))

    prometheus: PrometheusEndpoint | None = None
    webhook: WebhookEndpoint | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> AnalysisProviderSpec:
        if (self.prometheus is None) == (self.webhook is None):
            raise ValueError("an AnalysisProvider takes exactly one of prometheus or webhook")
        return self
