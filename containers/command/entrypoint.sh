#!/bin/bash
# Command node start-up: munge, sshd in the foreground.
. /usr/local/lib/testbed-init.sh
start_sshd
exec sleep infinity
