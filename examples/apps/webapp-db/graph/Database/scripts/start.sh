#!/bin/sh
set -e
cd "$ROBOCONF_FILES_DIR"
redis-server --bind "$ip" --port "$port" --requirepass "$password" \
	--dir "$ROBOCONF_FILES_DIR/data" --daemonize yes \
	--pidfile "$ROBOCONF_FILES_DIR/redis.pid" --logfile "$ROBOCONF_FILES_DIR/redis.log"
# Started means answering.
for _ in $(seq 50); do
	if redis-cli -h "$ip" -p "$port" -a "$password" --no-auth-warning ping 2>/dev/null | grep -q PONG; then
		exit 0
	fi
	sleep 0.1
done
echo "redis did not answer on $ip:$port" >&2
exit 1
