#!/usr/bin/env bash
# Runs schemathesis (from PyPI) against the OpenAPI document of a running reference server with
# the demo tenant, signed in as the demo administrator: every response must match the document
# and none may be a 5xx. Installs schemathesis into target/schemathesis-venv once. By hand:
#
#     scripts/with-demo-server.sh scripts/schemathesis.sh
#
# or against your own demo server:  PORTAL_BASE_URL=... PORTAL_PASSWORD=... scripts/schemathesis.sh
set -euo pipefail
cd "$(dirname "$0")/.."

base="${PORTAL_BASE_URL:?the server base URL}"
password="${PORTAL_PASSWORD:?the demo administrator password}"
examples="${SCHEMATHESIS_EXAMPLES:-20}"
venv="target/schemathesis-venv"
version="4.32.5"

if [ ! -x "$venv/bin/schemathesis" ] || ! "$venv/bin/schemathesis" --version | grep -q "$version"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "schemathesis==${version}"
fi

token="$(curl -fsS -X POST "$base/api/v1/auth/sign-in" -H 'content-type: application/json' \
    -d "{\"email\":\"admin@demo-msp.example.com\",\"password\":\"${password}\"}" | jq -r .token)"

# Operations that can end or disarm the one session the run uses are left out (the end-to-end
# tests cover them): signing out, setting a user's password (ends that user's sessions, the
# administrator's own included), changing a user (can deactivate the administrator) and changing
# a role (can take the administrator's permissions away).
exec "$venv/bin/schemathesis" run "$base/api/openapi.json" \
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
    --no-color
