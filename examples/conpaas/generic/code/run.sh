#!/bin/sh
echo "run on $CONPAAS_IP" >> "$HOME/generic.log"
