#!/bin/sh
# A backend came or went: a new configuration, and a graceful reload (the old process
# finishes its requests, the new one takes the port).
set -e
cd "$ROBOCONF_FILES_DIR"
. "$ROBOCONF_FILES_DIR/../scripts/configure.sh"
haproxy -c -q -f haproxy.cfg
if [ -f haproxy.pid ]; then
	haproxy -D -f haproxy.cfg -p haproxy.pid -sf $(cat haproxy.pid)
fi
