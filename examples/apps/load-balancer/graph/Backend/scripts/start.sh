#!/bin/sh
set -e
cd "$ROBOCONF_FILES_DIR"
nohup python3 backend.py "$ip" "$port" "$ROBOCONF_INSTANCE_PATH" > backend.log 2>&1 &
echo $! > backend.pid
for _ in $(seq 50); do
	if grep -q listening backend.log 2>/dev/null; then
		exit 0
	fi
	sleep 0.1
done
cat backend.log >&2
exit 1
