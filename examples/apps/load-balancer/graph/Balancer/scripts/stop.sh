#!/bin/sh
pid_file="$ROBOCONF_FILES_DIR/haproxy.pid"
[ -f "$pid_file" ] || exit 0
for pid in $(cat "$pid_file"); do
	kill "$pid" 2>/dev/null || true
	# Gone, or a zombie its reaper has not collected yet.
	while [ -r "/proc/$pid/stat" ] && [ "$(cut -d' ' -f3 "/proc/$pid/stat")" != Z ]; do
		sleep 0.02
	done
done
rm -f "$pid_file"
