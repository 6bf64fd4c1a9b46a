#!/usr/bin/env bash
# Starts Debian's PostgreSQL cluster and creates the role the tests use
# (GROVE_TEST_POSTGRES=postgres://grove:grove@127.0.0.1:5432/postgres). Idempotent; run as root.
set -euo pipefail
version="$(ls /usr/lib/postgresql | sort -n | tail -1)"
if ! pg_lsclusters --no-header | awk '{print $1, $2}' | grep -qx "$version main"; then
    pg_createcluster "$version" main
fi
# TLS with Debian's self-signed certificate (the store's TLS test trusts it): set when the
# cluster was made before that certificate existed.
conf="/etc/postgresql/$version/main/postgresql.conf"
if ! grep -Eq '^[[:space:]]*ssl[[:space:]]*=[[:space:]]*on' "$conf"; then
    if getent group ssl-cert >/dev/null; then
        usermod -a -G ssl-cert postgres
    fi
    cat >>"$conf" <<'CONF'
ssl = on
ssl_cert_file = '/etc/ssl/certs/ssl-cert-snakeoil.pem'
ssl_key_file = '/etc/ssl/private/ssl-cert-snakeoil.key'
CONF
    pg_ctlcluster "$version" main restart 2>/dev/null || true
fi
pg_ctlcluster "$version" main start 2>/dev/null || true
for _ in $(seq 50); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 0.2
done
pg_isready -h 127.0.0.1 -p 5432
role_exists="$(su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname = 'grove'\"")"
if [[ "$role_exists" != 1 ]]; then
    su postgres -c "psql -qc \"CREATE ROLE grove LOGIN CREATEDB PASSWORD 'grove'\""
fi
