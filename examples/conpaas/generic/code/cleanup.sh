#!/bin/sh
echo "cleanup" >> "$HOME/generic.log"
