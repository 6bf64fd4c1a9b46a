#!/bin/sh
# Whenever agents join or leave: $CONPAAS_AGENTS lists them by role.
echo "notify $(cat "$CONPAAS_AGENTS")" >> "$HOME/generic.log"
