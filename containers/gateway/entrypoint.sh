#!/bin/bash
# Gateway start-up: forwarded connections leave through the cluster side with the gateway's address
# (as a site's gateway is set up once by its admins), then sshd.
. /usr/local/lib/testbed-init.sh
if [ -n "${CLUSTER_SUBNET:-}" ]; then
    iptables -t nat -A POSTROUTING -d "$CLUSTER_SUBNET" -m comment --comment testbed-masquerade -j MASQUERADE
fi
start_sshd
exec sleep infinity
