# syntax=docker/dockerfile:1
# The modeldeploy operator image:
#   docker build -t ghcr.io/modeldeploy/modeldeploy:0.1.0 .
# Stage 1 builds wheels (the project's and its dependencies'); stage 2 installs them
# from that directory only (no index, no compiler), on the same slim Python base.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="modeldeploy" \
      org.opencontainers.image.description="A Kubernetes operator for ML model deployments" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Install from the builder's wheels only (a bind mount: the wheels leave no layer; pip
# also compiles the bytecode now, as the root filesystem is read-only at run time), then
# remove pip, setuptools and wheel: nothing in the running image builds or fetches packages.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels modeldeploy \
    && pip uninstall -y pip setuptools wheel \
    && groupadd --gid 65532 modeldeploy \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin modeldeploy
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
WORKDIR /
# 8080: Prometheus metrics, 8081: /healthz (modeldeploy run --metrics-port/--health-port)
EXPOSE 8080 8081
ENTRYPOINT ["modeldeploy"]
CMD ["run", "--all-namespaces"]
