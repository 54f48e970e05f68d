#!/bin/bash
# Gateway start-up: forwarded connections leave through the cluster side with the gateway's address
# (as a site's gateway is set up once by its admins), then sshd.
. /usr/local/lib/testbed-init.sh
if [ -n "${CLUSTER_SUBNET:-}" ]; then
    rule=(POSTROUTING -d "$CLUSTER_SUBNET" -m comment --comment testbed-masquerade -j MASQUERADE)
    iptables -t nat -C "${rule[@]}" 2>/dev/null || iptables -t nat -A "${rule[@]}"
fi
start_sshd
exec sleep infinity
