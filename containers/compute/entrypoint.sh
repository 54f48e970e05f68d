#!/bin/bash
# Compute start-up: munge, then slurmd in the foreground under this container's hostname.
. /usr/local/lib/testbed-init.sh
if [ "${TESTBED_ROLE:-compute}" = client ]; then
    exec sleep infinity
fi
exec slurmd -D -N "$(hostname)"
