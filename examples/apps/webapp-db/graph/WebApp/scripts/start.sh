#!/bin/sh
set -e
cd "$ROBOCONF_FILES_DIR"
cat > db.env <<END
$Database_0_ip
$Database_0_port
$Database_0_password
END
nohup python3 app.py "$ip" "$httpPort" > app.log 2>&1 &
echo $! > app.pid
for _ in $(seq 50); do
	if grep -q listening app.log 2>/dev/null; then
		exit 0
	fi
	sleep 0.1
done
cat app.log >&2
exit 1
