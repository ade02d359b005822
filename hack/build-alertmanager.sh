#!/usr/bin/env bash
# Build Prometheus Alertmanager from its pinned Go module version, for the integration test
# of the Alertmanager webhook source (tests/integration/test_ingress_alertmanager.py calls
# this script from a fixture, so a fresh machine builds it on first use).
#
# Idempotent: the binary is cached outside the repository in a directory keyed by its
# version, so a second run is instant. Progress goes to stderr; stdout gets one line,
# ALERTMANAGER=/path/to/binary, for `eval`.
set -euo pipefail

# v0.32 and later embed a web UI that only npm builds (ui/app/dist is not in the module),
# so `go install` of them fails; v0.31.1 ships its UI as generated Go (asset/), and its
# webhook receiver sends the same payload version 4.
ALERTMANAGER_VERSION=${ALERTMANAGER_VERSION:-v0.31.1}
CACHE=${AMBIENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ambient}
OUT="$CACHE/bin/alertmanager-$ALERTMANAGER_VERSION"
export GOTOOLCHAIN=local CGO_ENABLED=0

step() { printf '==> [%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ -x "$OUT/alertmanager" ]]; then
  step "alertmanager $ALERTMANAGER_VERSION: cached in $OUT"
else
  step "alertmanager $ALERTMANAGER_VERSION: building (go install; several minutes cold on 2 cores)"
  mkdir -p "$OUT"
  # Build into a temporary GOBIN and move into place at the end, so an interrupted build
  # never leaves a half-written binary that a later run would take as cached.
  tmp=$(mktemp -d "$OUT.tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # -v lists each package as it compiles: one progress line per 25 packages.
  if ! GOBIN="$tmp" go install -v -trimpath \
    "github.com/prometheus/alertmanager/cmd/alertmanager@$ALERTMANAGER_VERSION" 2>&1 |
    awk '/\.go:|cannot |error/ {print; fflush(); next} {n++} n%25==0 {printf "    alertmanager: %d packages compiled\n", n; fflush()}' >&2 ||
    [[ ! -x "$tmp/alertmanager" ]]; then
    step "alertmanager $ALERTMANAGER_VERSION: build failed (the compiler's errors are above)"
    exit 1
  fi
  mv "$tmp/alertmanager" "$OUT/alertmanager"
  step "alertmanager $ALERTMANAGER_VERSION: built in $OUT"
fi
printf 'ALERTMANAGER=%q\n' "$OUT/alertmanager"
