#!/usr/bin/env bash
# Build the chart tooling from pinned Go module versions: helm and kube-score by default;
# kubeconform and kind on request (`hack/build-tools.sh kubeconform kind`).
# kubeconform is not used by `make chart-check`: it needs JSON schemas from the internet;
# the rendered chart is validated by a server-side dry run on the local API server instead.
#
# Idempotent: each binary is cached outside the repository in a directory keyed by its
# version, so a second run is instant. Progress goes to stderr; stdout gets one
# NAME=/path/to/binary line per tool (HELM=..., KUBE_SCORE=...) for `eval`.
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v3.21.4}
KUBECONFORM_VERSION=${KUBECONFORM_VERSION:-v0.7.0}
KUBE_SCORE_VERSION=${KUBE_SCORE_VERSION:-v1.20.0}
KIND_VERSION=${KIND_VERSION:-v0.32.0}
CACHE=${AMBIENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ambient}
BIN="$CACHE/bin"
export GOTOOLCHAIN=local CGO_ENABLED=0

step() { printf '==> [%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# go install <module path>@<version> into $BIN/<name>-<version>/, skipped when cached.
install_tool() {
  local name=$1 pkg=$2 version=$3
  local out="$BIN/$name-$version"
  if [[ -x "$out/$name" ]]; then step "$name $version: cached in $out"; return; fi
  step "$name $version: building (go install $pkg@$version; a few minutes cold)"
  mkdir -p "$out"
  # -v lists each package as it compiles: visible progress on a slow machine.
  GOBIN="$out" go install -v "$pkg@$version" 2>&1 | awk '{n++} n%25==0 {printf "    %s: %d packages\n", "'"$name"'", n; fflush()}' >&2
  [[ -x "$out/$name" ]] || { step "$name: build failed"; exit 1; }
  step "$name $version: built"
}

# HELM=/path, KUBE_SCORE=/path, ... on stdout.
print_path() { local var=${1^^}; printf '%s=%q\n' "${var//-/_}" "$BIN/$1-$2/$1"; }

tools=("${@:-helm kube-score}")
for t in ${tools[*]}; do
  case "$t" in
    helm) install_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"; print_path helm "$HELM_VERSION" ;;
    kubeconform) install_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"; print_path kubeconform "$KUBECONFORM_VERSION" ;;
    # kube-linter (golang.stackrox.io/kube-linter) is refused by the module proxy reachable
    # here (403 on every version), so the security linter is kube-score.
    kube-score) install_tool kube-score github.com/zegl/kube-score/cmd/kube-score "$KUBE_SCORE_VERSION"; print_path kube-score "$KUBE_SCORE_VERSION" ;;
    kind) install_tool kind sigs.k8s.io/kind "$KIND_VERSION"; print_path kind "$KIND_VERSION" ;;
    *) step "unknown tool $t (helm, kube-score, kubeconform, kind)"; exit 2 ;;
  esac
done
