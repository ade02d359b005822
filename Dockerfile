# The product image: one image, three entry points (the chart picks one per Deployment):
#   python -m ambient.operator | python -m ambient.webhooks.admission | python -m ambient.webhooks.ingress
# Multi-stage: the build stage resolves the pinned dependency tree (requirements.lock) into
# a virtualenv; the runtime stage copies only that virtualenv and runs as a non-root user.
# Linted by hadolint in `make chart-check` (hack/chart-check.sh).

# Exact tag of the base; set PYTHON_IMAGE to a digest (python@sha256:...) to pin further.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/ambient
COPY requirements.lock pyproject.toml README.md ./
COPY ambient/ ambient/
COPY crds/ crds/
COPY operator/ operator/
COPY webhooks/ webhooks/
COPY runners/ runners/
COPY common/ common/
# -c requirements.lock: every runtime dependency at the exact version tested; the dev
# tools in the lock are not installed (constraints only pin what is asked for).
RUN /opt/ambient/bin/pip install -c requirements.lock . \
 && /opt/ambient/bin/python -c "import ambient.operator.main, ambient.runners.registry"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="ambient" \
      org.opencontainers.image.description="Agentic work as Kubernetes Sessions: operator, admission webhook, ingress" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/ambient/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/ambient /opt/ambient
# 65532 is the conventional "nonroot" user; the chart sets the same uid and a read-only
# root filesystem.
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["python", "-m"]
CMD ["ambient.operator"]
