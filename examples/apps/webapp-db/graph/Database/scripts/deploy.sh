#!/bin/sh
# Where redis keeps its data, in the instance's own folder.
set -e
mkdir -p "$ROBOCONF_FILES_DIR/data"
