#!/bin/bash
# Gateway start-up: forwarded connections leave through the cluster side with the gateway's address
# (as a site's gateway is set up once by its admins), bwvisu-forward's configuration, then sshd.
. /usr/local/lib/testbed-init.sh
if [ -n "${CLUSTER_SUBNET:-}" ]; then
    rule=(POSTROUTING -d "$CLUSTER_SUBNET" -m comment --comment testbed-masquerade -j MASQUERADE)
    iptables -t nat -C "${rule[@]}" 2>/dev/null || iptables -t nat -A "${rule[@]}"
fi
install -d -o root -g root -m 0755 /etc/bwvisu
write_b64 FORWARD_CONF_B64 /etc/bwvisu/forward.conf root:root 0644
start_sshd
exec sleep infinity
