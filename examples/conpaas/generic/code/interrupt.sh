#!/bin/sh
echo "interrupt" >> "$HOME/generic.log"
