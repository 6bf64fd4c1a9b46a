#!/bin/sh
# Once per code version, on each agent.
echo "init $CONPAAS_ROLE $CONPAAS_IP" >> "$HOME/generic.log"
