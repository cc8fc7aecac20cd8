#!/usr/bin/env bash
# Starts the reference server with the demo tenant on a fresh SQLite file (debug build), runs the
# given command with PORTAL_BASE_URL and PORTAL_PASSWORD set, and stops the server. Used by .ci/run:
#
#     scripts/with-demo-server.sh scripts/walkthrough.sh
#     scripts/with-demo-server.sh scripts/schemathesis.sh
set -euo pipefail
cd "$(dirname "$0")/.."

port="${PORTAL_DEMO_PORT:-18090}"
export PORTAL_BASE_URL="http://127.0.0.1:${port}"
export PORTAL_PASSWORD="demo-password-for-ci"
work="$(mktemp -d)"

cargo build -q -p portal-server
bin="$PWD/target/debug/portal-server"
# The server runs in the temporary directory: its demo master key and its mail files
# (./portal-mail, the demo's file transport) go there.
export PORTAL_DEMO_MAIL_DIR="$work/portal-mail"
(cd "$work" && DATABASE_URL="sqlite://$work/demo.db" PORTAL_BIND="127.0.0.1:${port}" PORTAL_PUBLIC_URL="$PORTAL_BASE_URL" \
    PORTAL_DEMO_PASSWORD="$PORTAL_PASSWORD" RUST_LOG="${RUST_LOG:-warn}" \
    exec "$bin" serve --demo >"$work/server.out" 2>"$work/server.log") &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

for _ in $(seq 1 60); do
    curl -fsS "$PORTAL_BASE_URL/readyz" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 1
done
curl -fsS "$PORTAL_BASE_URL/readyz" >/dev/null

status=0
"$@" || status=$?
if [ "$status" -ne 0 ]; then
    echo "---- server log (errors) ----" >&2
    grep -E 'ERROR|panicked' "$work/server.log" | tail -n 50 >&2 || true
fi
exit "$status"
