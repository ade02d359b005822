#!/usr/bin/env bash
# Build the local control plane's binaries from pinned Go module versions.
#
# Kubernetes cannot be `go install`ed (its go.mod replaces the staging modules with local
# paths), so a small wrapper module requires k8s.io/kubernetes and pins every staging
# module to the matching v0.x tag. etcd gets the same treatment. Binaries are cached
# outside the repository, keyed by version, so only the first run pays for the build.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.35.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.14}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
CACHE=${AMBIENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ambient}
BIN="$CACHE/bin"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

staging_version="v0.${K8S_VERSION#v1.}"
k8s_minor=${K8S_VERSION#v1.}; k8s_minor=${k8s_minor%%.*}
STAGING=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
  cloud-provider cluster-bootstrap code-generator component-base component-helpers
  controller-manager cri-api cri-client csi-translation-lib dynamic-resource-allocation
  endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy
  kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission
  sample-apiserver sample-cli-plugin sample-controller)

step() { printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# Print one line per 25 packages compiled, so a multi-minute build visibly moves.
progress() {
  local label=$1 n=0
  while IFS= read -r line; do
    case "$line" in
      *" error"*|*"cannot "*|*".go:"*) printf '%s\n' "$line" ;;
    esac
    n=$((n + 1))
    if (( n % 25 == 0 )); then printf '    %s: %d packages compiled\n' "$label" "$n"; fi
  done
  printf '    %s: %d packages compiled, done\n' "$label" "$n"
}

build_k8s() {
  local out="$BIN/kubernetes-$K8S_VERSION"
  local cmds=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  local missing=0
  for c in "${cmds[@]}"; do [[ -x "$out/$c" ]] || missing=1; done
  if (( missing == 0 )); then step "kubernetes $K8S_VERSION: cached in $out"; return; fi
  step "kubernetes $K8S_VERSION: building ${cmds[*]} (cold build: 15-30 minutes on 2 cores)"
  local src="$CACHE/src/kubernetes-$K8S_VERSION"
  mkdir -p "$src" "$out"
  {
    echo "module ambient.local/kubernetes-build"
    echo
    echo "go 1.25.0"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    for m in "${STAGING[@]}"; do echo "replace k8s.io/$m => k8s.io/$m $staging_version"; done
  } >"$src/go.mod"
  local ver="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
  ver+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$k8s_minor"
  ver+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  ver+=" -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$k8s_minor"
  (
    cd "$src"
    step "kubernetes: resolving modules"
    go mod download 2>&1 | tail -n 5
    step "kubernetes: compiling"
    go build -v -trimpath -ldflags "-s -w $ver" -o "$out/" \
      $(printf 'k8s.io/kubernetes/cmd/%s ' "${cmds[@]}") 2>&1 | progress kubernetes
    for c in "${cmds[@]}"; do [[ -x "$out/$c" ]] || { echo "build of $c failed" >&2; exit 1; }; done
  )
}

build_etcd() {
  local out="$BIN/etcd-$ETCD_VERSION"
  if [[ -x "$out/etcd" ]]; then step "etcd $ETCD_VERSION: cached in $out"; return; fi
  step "etcd $ETCD_VERSION: building"
  local src="$CACHE/src/etcd-$ETCD_VERSION"
  mkdir -p "$src" "$out"
  cat >"$src/go.mod" <<MOD
module ambient.local/etcd-build

go 1.25.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
  cat >"$src/main.go" <<'GO'
// Command etcd is etcd's own main, built from the server module at a pinned tag.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (
    cd "$src"
    go mod tidy 2>&1 | tail -n 5
    go build -v -trimpath -ldflags "-s -w" -o "$out/etcd" . 2>&1 | progress etcd
  )
}

build_go_install() {  # name module@version
  local name=$1 pkg=$2 version=$3
  local out="$BIN/$name-$version"
  if [[ -x "$out/$name" ]]; then step "$name $version: cached in $out"; return; fi
  step "$name $version: building"
  mkdir -p "$out"
  GOBIN="$out" go install -v -trimpath -ldflags "-s -w" "$pkg@$version" 2>&1 | progress "$name"
}

what=${1:-all}
mkdir -p "$BIN"
case "$what" in
  all)
    build_etcd
    build_go_install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION"
    build_k8s
    ;;
  etcd) build_etcd ;;
  kwok) build_go_install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" ;;
  kubernetes) build_k8s ;;
  *) echo "usage: $0 [all|etcd|kwok|kubernetes]" >&2; exit 2 ;;
esac
step "binaries are in $BIN"
