#!/bin/sh
# Nothing to install: the server is in the files folder.
test -f "$ROBOCONF_FILES_DIR/app.py"
