#!/usr/bin/env bash
# Runs schemathesis (from PyPI) against the OpenAPI document of a running reference server:
# the demo tenant on a fresh SQLite file, signed in as the demo administrator. Every response
# must match the document and none may be a 5xx. Used by .ci/run; by hand:
#
#     scripts/schemathesis.sh [examples-per-operation]
#
# Needs python3 with venv; installs schemathesis into target/schemathesis-venv once.
set -euo pipefail
cd "$(dirname "$0")/.."

examples="${1:-${SCHEMATHESIS_EXAMPLES:-20}}"
venv="target/schemathesis-venv"
version="4.32.5"
port="${SCHEMATHESIS_PORT:-18090}"
base="http://127.0.0.1:${port}"
work="$(mktemp -d)"
password="schemathesis-demo-password"

if [ ! -x "$venv/bin/schemathesis" ] || ! "$venv/bin/schemathesis" --version | grep -q "$version"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "schemathesis==${version}"
fi

cargo build -q -p portal-server
server_log="$work/server.log"
DATABASE_URL="sqlite://$work/schemathesis.db" PORTAL_BIND="127.0.0.1:${port}" PORTAL_PUBLIC_URL="$base" \
    PORTAL_DEMO_PASSWORD="$password" RUST_LOG=warn \
    target/debug/portal-server serve --demo >"$work/server.out" 2>"$server_log" &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

for _ in $(seq 1 60); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && break
    sleep 1
done
curl -fsS "$base/readyz" >/dev/null

token="$(curl -fsS -X POST "$base/api/v1/auth/sign-in" -H 'content-type: application/json' \
    -d "{\"email\":\"admin@demo-msp.example.com\",\"password\":\"${password}\"}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"

# Operations that can end or disarm the one session the run uses are left out (they are covered
# by the end-to-end tests): signing out, setting a user's password (ends that user's sessions,
# the administrator's own included), changing a user (can deactivate the administrator) and
# changing a role (can take the administrator's permissions away).
status=0
"$venv/bin/schemathesis" run "$base/api/openapi.json" \
    --header "Authorization: Bearer ${token}" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --exclude-operation-id sign_out \
    --exclude-operation-id set_user_password \
    --exclude-operation-id update_user \
    --exclude-operation-id update_role \
    --max-examples "$examples" \
    --phases examples,coverage,fuzzing \
    --seed 20261128 \
    --workers 2 \
    --no-color || status=$?
if [ "$status" -ne 0 ]; then
    echo "---- server log (errors) ----"
    grep -E 'ERROR|panicked' "$server_log" | tail -n 50 || true
fi
exit "$status"
