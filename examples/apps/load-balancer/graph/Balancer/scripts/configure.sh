#!/bin/sh
# Writes haproxy.cfg from the imported backends (sourced by start and update).
cfg="$ROBOCONF_FILES_DIR/haproxy.cfg"
{
	echo "defaults"
	echo "	mode http"
	echo "	timeout connect 2s"
	echo "	timeout client 10s"
	echo "	timeout server 10s"
	echo "frontend web"
	echo "	bind $ip:$httpPort"
	echo "	default_backend apps"
	echo "backend apps"
	echo "	balance roundrobin"
	i=0
	while [ "$i" -lt "${Backend_size:-0}" ]; do
		eval "address=\$Backend_${i}_ip:\$Backend_${i}_port"
		echo "	server app$i $address"
		i=$((i + 1))
	done
} > "$cfg.new"
mv "$cfg.new" "$cfg"
