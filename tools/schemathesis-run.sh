#!/usr/bin/env bash
# The committed OpenAPI document against a real `grove master` over HTTPS (its own CA,
# which schemathesis trusts): schemathesis generates
# requests from it (valid and invalid ones) and checks that no answer is a server error
# and every answer matches the document. Bounded: a fixed seed, a few examples per
# operation, a time budget.
#
#   tools/schemathesis-run.sh SCHEMATHESIS GROVE
set -euo pipefail
schemathesis=$1
grove=$2
cd "$(dirname "$0")/.."

data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$grove" master --listen "127.0.0.1:$port" --data-dir "$data/master" >/dev/null 2>"$data/master.log" &
master=$!
trap 'kill "$master" 2>/dev/null || true; wait "$master" 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 100); do
    [[ -f "$data/master/ca.pem" ]] &&
        curl -fsS --cacert "$data/master/ca.pem" "https://127.0.0.1:$port/v1/health" >/dev/null 2>&1 && break
    sleep 0.1
done
token=$(cat "$data/master/admin.token")

"$schemathesis" --config-file tools/schemathesis.toml run crates/master/openapi.json \
    --url "https://127.0.0.1:$port" \
    --tls-verify "$data/master/ca.pem" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --max-examples 10 \
    --seed 1 \
    --max-time 150 \
    --workers 2 \
    --warnings off
