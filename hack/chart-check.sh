#!/usr/bin/env bash
# `make chart-check`: the Helm chart's static checks, all offline.
#   1. helm lint --strict, with the default and the production-like values;
#   2. helm template with both (and their NOTES, checked for the webhook URL and the next
#      commands), validated by a server-side dry run on the local API server
#      (real Kubernetes schemas, the product's CRDs with their CEL rules, RBAC and
#      admission-registration validation). Kinds the local API server does not serve
#      (cert-manager, Prometheus Operator) are listed as skipped, never silently dropped;
#   3. kube-score (the security and reliability linter; kube-linter is not reachable from
#      here) on both renders, with the optional seccomp and ports tests on and each skipped test's reason
#      written in .kube-score-ignores;
#   4. hadolint on the product and runner Dockerfiles (the real hadolint binary, from the pinned PyPI wheel);
#   5. charts/ambient/README.md's values table is the one hack/chart_readme.py makes of values.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."

CHART=charts/ambient
PROD=$CHART/ci/production-values.yaml
PY=${PY:-.venv/bin/python}
K8S_VERSION=${K8S_VERSION:-1.35.4}
step() { printf '==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

step "chart README's values table matches values.yaml"
$PY hack/chart_readme.py --check && echo "    chart README: ok"

eval "$(hack/build-tools.sh helm kube-score)"
ignores=()
while read -r id _; do
  [[ -z $id || $id == \#* ]] || ignores+=(--ignore-test "$id")
done <.kube-score-ignores
KUBECONFIG=$($PY hack/cluster.py up | tail -n1)
KUBECTL=$($PY hack/cluster.py bin kubectl)
export KUBECONFIG
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

step "chart CRDs match the generated crds/*.yaml"
for f in crds/*.yaml; do
  cmp -s "$f" "$CHART/files/crds/$(basename "$f")" || { echo "$CHART/files/crds is stale: run 'make chart-crds'"; exit 1; }
done

# NOTES.txt as helm renders it for `helm install` (same values, release and helpers), but
# offline: `helm install --dry-run` needs every kind served (cert-manager, monitoring).
# A copy of the chart renders it through tpl into a ConfigMap that only this step reads.
render_notes() {
  rm -rf "$out/notes-chart" && cp -r "$CHART" "$out/notes-chart"
  cp "$CHART/templates/NOTES.txt" "$out/notes-chart/notes.tpl"
  printf '%s\n' 'apiVersion: v1' 'kind: ConfigMap' 'metadata: {name: notes}' \
    'data: {notes: {{ tpl (.Files.Get "notes.tpl") . | toJson }}}' \
    >"$out/notes-chart/templates/zz-notes.yaml"
  "$HELM" template ambient "$out/notes-chart" --namespace default --kube-version "$K8S_VERSION" \
    --show-only templates/zz-notes.yaml "$@" \
    | $PY -c 'import sys, yaml; print(yaml.safe_load(sys.stdin)["data"]["notes"])'
}

for values in default production; do
  args=()
  [[ $values == production ]] && args=(-f "$PROD")
  step "helm lint --strict ($values values)"
  "$HELM" lint --strict "$CHART" "${args[@]}"
  step "helm template ($values values)"
  "$HELM" template ambient "$CHART" --namespace default --kube-version "$K8S_VERSION" \
    "${args[@]}" >"$out/$values.yaml"
  step "NOTES print the webhook URL and the next commands ($values values)"
  want='port-forward svc/ambient-ingress 8080:80'
  [[ $values == production ]] && want='BASE=https://ambient.example.com'
  notes=$(render_notes "${args[@]}")
  for line in "$want" 'ambient keys create' 'signingSecretRef' 'X-Hub-Signature-256' 'kubectl get sessions -A'; do
    grep -qF -- "$line" <<<"$notes" || { echo "NOTES lack: $line"; echo "$notes"; exit 1; }
  done
  echo "    NOTES: ok"
  step "server-side dry run of every rendered object ($values values)"
  # "<apiVersion> <Kind>" of everything the local API server serves.
  served=$("$KUBECTL" api-resources --no-headers | awk '{print $(NF-2), $NF}')
  $PY - "$out/$values.yaml" "$out/$values-served.yaml" "$served" <<'PYEOF'
import sys

import yaml

src, dst, served = sys.argv[1], sys.argv[2], set(sys.argv[3].splitlines())
docs = [d for d in yaml.safe_load_all(open(src)) if d]
keep = [d for d in docs if f"{d['apiVersion']} {d['kind']}" in served]
skipped = sorted({f"{d['kind']} ({d['apiVersion']})" for d in docs if d not in keep})
yaml.safe_dump_all(keep, open(dst, "w"))
print(f"    {len(keep)} objects to validate; skipped, API not served here: {', '.join(skipped) or 'none'}")
PYEOF
  "$KUBECTL" apply --dry-run=server --server-side --force-conflicts --field-manager=chart-check \
    -f "$out/$values-served.yaml" >/dev/null
  echo "    server-side dry run: ok"
  step "kube-score ($values values)"
  # Exit code 1 just means findings: judged from the output below. Anything else is a failure.
  rc=0
  "$KUBE_SCORE" score --output-format ci "${ignores[@]}" \
    --enable-optional-test container-seccomp-profile --enable-optional-test container-ports-check \
    "$out/$values.yaml" >"$out/$values.score" || rc=$?
  if (( rc > 1 )) || ! grep -q '^\[OK\]' "$out/$values.score"; then
    cat "$out/$values.score"; echo "kube-score did not run"; exit 1
  fi
  if grep -E '^\[(CRITICAL|WARNING)\]' "$out/$values.score"; then
    echo "kube-score found the problems above (fix them, or skip a test in .kube-score-ignores with its reason)"
    exit 1
  fi
  echo "    kube-score: $(grep -c '^\[OK\]' "$out/$values.score") checks ok"
done

step "hadolint Dockerfile runners/images/Dockerfile"
.venv/bin/hadolint --config .hadolint.yaml Dockerfile runners/images/Dockerfile && echo "    hadolint: ok"
step "chart checks passed"
