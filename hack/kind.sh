#!/usr/bin/env bash
# `make kind`: the product on a real kind cluster, for users with Docker (not run in CI
# here: this machine has no Docker engine).
#   1. kind v0.32.0 and helm built from pinned Go modules (cached by hack/build-tools.sh);
#   2. a kind cluster (reused when it exists);
#   3. the product image (Dockerfile) and every runner image (runners/images/Dockerfile, named
#      as in runners/registry.yaml) built and loaded into the cluster's nodes;
#   4. the chart installed with the local image (pull policy Never: nothing is pulled);
#   5. examples/ applied and the example Session waited on until phase Completed.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER_NAME=${KIND_CLUSTER_NAME:-ambient}
TAG=${AMBIENT_IMAGE_TAG:-dev}
NAMESPACE=${AMBIENT_NAMESPACE:-ambient-system}
step() { printf '==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

command -v docker >/dev/null && docker info >/dev/null 2>&1 \
  || { echo "make kind needs a running Docker engine (docker info failed)"; exit 1; }
eval "$(hack/build-tools.sh helm kind)"

if "$KIND" get clusters | grep -qx "$CLUSTER_NAME"; then
  step "kind cluster $CLUSTER_NAME: reusing"
else
  step "kind cluster $CLUSTER_NAME: creating"
  "$KIND" create cluster --name "$CLUSTER_NAME" --wait 120s
fi
CONTEXT="kind-$CLUSTER_NAME"
k() { kubectl --context "$CONTEXT" "$@"; }

step "building ambient/ambient:$TAG"
docker build -t "ambient/ambient:$TAG" .
"$KIND" load docker-image --name "$CLUSTER_NAME" "ambient/ambient:$TAG"
# One runner image per runner this repository implements (runners/sdk/cli.py), tagged as
# runners/registry.yaml names it, from the one runner Dockerfile.
for framework in $(.venv/bin/python -c 'from ambient.runners.sdk.cli import RUNNERS; print(*RUNNERS)'); do
  image=$(.venv/bin/python - "$framework" <<'PY'
import sys

from ambient.runners.registry import load

entry = load().frameworks[sys.argv[1]]
print(entry.versions[entry.default_version].image)
PY
)
  step "building runner image $image"
  docker build -t "$image" -f runners/images/Dockerfile --build-arg RUNNER="$framework" .
  "$KIND" load docker-image --name "$CLUSTER_NAME" "$image"
done

step "installing the chart into $NAMESPACE"
k create namespace "$NAMESPACE" --dry-run=client -o yaml | k apply -f -
k label namespace "$NAMESPACE" pod-security.kubernetes.io/enforce=restricted --overwrite
"$HELM" upgrade --install ambient charts/ambient --kube-context "$CONTEXT" \
  --namespace "$NAMESPACE" --wait --timeout 5m \
  --set image.tag="$TAG" --set image.pullPolicy=Never \
  --set-json 'runners.registry='"$(.venv/bin/python -c 'import json,yaml; print(json.dumps(yaml.safe_load(open("runners/registry.yaml"))))')"

step "smoke Session: examples/"
k apply -f examples/namespace.yaml -f examples/namespacepolicy.yaml
k apply -f examples/session.yaml
k -n team-alpha wait session/fix-flaky-test --for=jsonpath='{.status.phase}'=Completed --timeout=300s
step "the example Session is Completed; delete the cluster with: $KIND delete cluster --name $CLUSTER_NAME"
