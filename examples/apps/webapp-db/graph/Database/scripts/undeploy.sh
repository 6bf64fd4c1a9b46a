#!/bin/sh
rm -rf "$ROBOCONF_FILES_DIR/data"
