#!/bin/sh
set -e
cd "$ROBOCONF_FILES_DIR"
. "$ROBOCONF_FILES_DIR/../scripts/configure.sh"
haproxy -c -q -f haproxy.cfg
haproxy -D -f haproxy.cfg -p haproxy.pid
