#!/usr/bin/env bash
# Build the peer the benchmark tests/bench/bench_peer.py measures beside ours: Argo Events
# (one binary: its controller, eventsource-service and sensor-service commands) and the
# NATS server its JetStream EventBus runs, both from their pinned Go module versions.
#
# Idempotent: each binary is cached outside the repository in a directory keyed by its
# version, so a second run is instant. Progress goes to stderr; stdout gets two lines,
# ARGO_EVENTS=/path and NATS_SERVER=/path, for `eval`.
set -euo pipefail

# v1.9.6: the release the module proxy serves here (its version list is refused, so the
# version is named, never resolved from "latest"). Its JetStream EventBus defaults to
# NATS 2.10; 2.15.3 is the server served here, and speaks the same JetStream API.
ARGO_EVENTS_VERSION=${ARGO_EVENTS_VERSION:-v1.9.6}
NATS_SERVER_VERSION=${NATS_SERVER_VERSION:-v2.15.3}
CACHE=${AMBIENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ambient}
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false

step() { printf '==> [%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() {
  step "$1"
  printf '    what to do: %s\n' "$2" >&2
  exit 1
}

command -v go >/dev/null ||
  fail "go is not installed" "install Go >= 1.24 (the module's go directive) and run this again"

# -v lists each package as it compiles: one progress line per 50 packages.
progress() {
  awk -v name="$1" '/\.go:|cannot |error|refused|Forbidden|not available/ {print; fflush(); next}
    {n++} n%50==0 {printf "    %s: %d packages\n", name, n; fflush()}' >&2
}

# build NAME VERSION OUT_DIR BINARY MODULE PACKAGE MINUTES (cold, on 2 busy cores)
build() {
  local name=$1 version=$2 out=$3 binary=$4 module=$5 package=$6 minutes=$7
  if [[ -x "$out/$binary" ]]; then
    step "$name $version: cached in $out"
    return
  fi
  step "$name $version: building (Go modules; ~$minutes minutes cold on 2 cores)"
  mkdir -p "$out"
  # Build into a temporary directory and move into place at the end, so an interrupted
  # build never leaves a half-written binary that a later run would take as cached.
  local tmp
  tmp=$(mktemp -d "$out.tmp.XXXXXX")
  # shellcheck disable=SC2064 # expand now: the trap must remove this build's directory
  trap "rm -rf '$tmp'" EXIT
  # `go install module/pkg@version` also asks the proxy for the module's version list (to
  # report deprecations), which the proxy here refuses for Argo Events; so download the
  # pinned version and build it as its own main module: the same go.mod and go.sum that
  # `go install @version` would use, no replace directives (the module has none).
  local json dir
  if ! json=$(go mod download -json "$module@$version" 2>&1); then
    printf '%s\n' "$json" | grep -E '"Error"|^go: ' >&2
    fail "$name $version: go mod download $module@$version failed (the error is above)" \
      "check that the Go module proxy serves $module@$version (GOPROXY=$(go env GOPROXY)), or set ${name^^}_VERSION to a version it serves"
  fi
  dir=$(printf '%s\n' "$json" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  if ! (cd "$dir" && go build -v -trimpath -o "$tmp/$binary" "$package" 2>&1 | progress "$name") ||
    [[ ! -x "$tmp/$binary" ]]; then
    fail "$name $version: build failed (the compiler's errors are above)" \
      "run again (a partial build is cached by Go and resumes); if it fails the same way, the Go toolchain ($(go version | cut -d' ' -f3)) may not build this version"
  fi
  mv "$tmp/$binary" "$out/$binary"
  rm -rf "$tmp"
  trap - EXIT
  step "$name $version: built in $out"
}

ARGO_DIR="$CACHE/bin/argo-events-$ARGO_EVENTS_VERSION"
NATS_DIR="$CACHE/bin/nats-server-$NATS_SERVER_VERSION"
build argo_events "$ARGO_EVENTS_VERSION" "$ARGO_DIR" argo-events \
  github.com/argoproj/argo-events ./cmd 15
build nats_server "$NATS_SERVER_VERSION" "$NATS_DIR" nats-server \
  github.com/nats-io/nats-server/v2 . 3
printf 'ARGO_EVENTS=%q\n' "$ARGO_DIR/argo-events"
printf 'NATS_SERVER=%q\n' "$NATS_DIR/nats-server"
