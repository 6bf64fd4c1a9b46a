#!/bin/sh
# The database moved or changed: the server reads db.env on each request.
cat > "$ROBOCONF_FILES_DIR/db.env" <<END
$Database_0_ip
$Database_0_port
$Database_0_password
END
