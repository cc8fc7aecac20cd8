#!/usr/bin/env bash
# The README's walkthrough: sign in to the demo server and walk its draft portal from draft to
# completed with curl and jq. Run it against a server started with
#
#     cargo run --release -p portal-server -- serve --demo
#
# as   PORTAL_PASSWORD=<the printed password> scripts/walkthrough.sh [base-url]
#
# .ci/run runs it (through scripts/with-demo-server.sh) to keep these commands true.
set -euo pipefail

BASE="${1:-${PORTAL_BASE_URL:-http://localhost:8080}}"
EMAIL="${PORTAL_EMAIL:-admin@demo-msp.example.com}"
PASSWORD="${PORTAL_PASSWORD:?set PORTAL_PASSWORD to the password serve --demo printed}"
JSON='content-type: application/json'

# 1. Sign in: the answer holds a bearer token (a cookie is set too, for browsers).
TOKEN=$(curl -sf -X POST "$BASE/api/v1/auth/sign-in" -H "$JSON" \
    -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" | jq -r .token)
AUTH="Authorization: Bearer $TOKEN"

# 2. Start onboarding the demo company from the demo template: a new draft portal.
COMPANY=$(curl -sf "$BASE/api/v1/companies" -H "$AUTH" | jq -r '.items[0].id')
TEMPLATE=$(curl -sf "$BASE/api/v1/templates" -H "$AUTH" | jq -r '.items[0].id')
PORTAL=$(curl -sf -X POST "$BASE/api/v1/companies/$COMPANY/portals" -H "$AUTH" -H "$JSON" \
    -d "{\"template_id\":\"$TEMPLATE\",\"name\":\"Walkthrough $(date +%H:%M:%S)\",
         \"contacts\":[{\"name\":\"Priya Patel\",\"email\":\"priya@northwind.example.com\",
                       \"role\":\"primary_contact\",\"primary\":true}]}" | jq -r .portal.id)
etag() { curl -sf -o /dev/null -D - "$1" -H "$AUTH" | awk 'tolower($1) == "etag:" { print $2 }' | tr -d '\r'; }
curl -sf "$BASE/api/v1/portals/$PORTAL" -H "$AUTH" \
    | jq '{name: .portal.name, status: .portal.status, tasks: (.tasks | length), percent: .progress.percent}'

# 3. Activate it (If-Match carries the version last read; without it the answer is 428).
curl -sf -X POST "$BASE/api/v1/portals/$PORTAL/transitions" -H "$AUTH" -H "$JSON" \
    -H "If-Match: $(etag "$BASE/api/v1/portals/$PORTAL")" -d '{"to":"active"}' \
    | jq '{status: .portal.status, first_due: .tasks[0].due_date}'
# Activation mailed Priya an invitation with her link (the demo writes mail to ./portal-mail).
curl -sf "$BASE/api/v1/outbox?limit=1" -H "$AUTH" | jq -r '.items[0] | "\(.kind) to \(.recipient)"'

# 4. Complete every task whose dependencies are done, until none is left open. Staff completing
#    a client's task give a reason.
while true; do
    OPEN=$(curl -sf "$BASE/api/v1/portals/$PORTAL" -H "$AUTH" \
        | jq -r '.tasks[] | select(.status == "pending" or .status == "in_progress") | "\(.id) \(.version)"')
    [ -z "$OPEN" ] && break
    while read -r TASK VERSION; do
        curl -sf -X POST "$BASE/api/v1/portals/$PORTAL/tasks/$TASK/complete" -H "$AUTH" -H "$JSON" \
            -H "If-Match: \"$VERSION\"" -d '{"reason":"Done in the walkthrough"}' \
            | jq -r '"completed: \(.title)"'
    done <<<"$OPEN"
done

# 5. Complete the portal, and read what happened.
curl -sf -X POST "$BASE/api/v1/portals/$PORTAL/transitions" -H "$AUTH" -H "$JSON" \
    -H "If-Match: $(etag "$BASE/api/v1/portals/$PORTAL")" -d '{"to":"completed"}' \
    | jq '{status: .portal.status, percent: .progress.percent}'
curl -sf "$BASE/api/v1/portals/$PORTAL/activity?kind=portal_status_changed,task_completed&limit=5" -H "$AUTH" \
    | jq -r '.items[] | "\(.at)  \(.summary)"'

# (CI) The invitation reached the demo's file transport, with Priya's link in it.
if [ -n "${PORTAL_DEMO_MAIL_DIR:-}" ]; then
    for _ in $(seq 1 20); do
        grep -l "priya@northwind.example.com" "$PORTAL_DEMO_MAIL_DIR"/*.eml 2>/dev/null | xargs -r grep -l "$BASE/access/" >/dev/null && break
        sleep 0.5
    done
    grep -l "priya@northwind.example.com" "$PORTAL_DEMO_MAIL_DIR"/*.eml | xargs grep -l "$BASE/access/" >/dev/null
    echo "invitation delivered to the file transport: $(grep -l "priya@northwind.example.com" "$PORTAL_DEMO_MAIL_DIR"/*.eml | head -1)"
fi
