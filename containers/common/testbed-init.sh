# Sourced by every role's entrypoint: writes the cluster-wide files handed in by the testbed as
# environment variables (base64), then starts munged. Nothing here is secret beyond the test cluster.
set -euo pipefail

write_b64() {  # write_b64 VAR PATH OWNER MODE
    local value="${!1:-}"
    [ -n "$value" ] || return 0
    printf '%s' "$value" | base64 -d >"$2"
    chown "$3" "$2"
    chmod "$4" "$2"
}

write_b64 SLURM_CONF_B64 /etc/slurm/slurm.conf root:root 0644
write_b64 CGROUP_CONF_B64 /etc/slurm/cgroup.conf root:root 0644
if [ -n "${MUNGE_KEY_B64:-}" ]; then
    write_b64 MUNGE_KEY_B64 /etc/munge/munge.key munge:munge 0400
    mkdir -p /run/munge && chown munge:munge /run/munge
    su -s /bin/sh munge -c "/usr/sbin/munged --force"
fi

start_sshd() {
    # Kept across `docker restart`, so known_hosts stays valid when a stopped node comes back.
    [ -f /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
    if [ -n "${RUNNER_AUTHORIZED_KEY:-}" ]; then
        for account in bwvisu bwvisu-compat; do
            install -d -o "$account" -g "$account" -m 0700 "/home/$account/.ssh"
            printf '%s\n' "$RUNNER_AUTHORIZED_KEY" >"/home/$account/.ssh/authorized_keys"
            chown "$account:$account" "/home/$account/.ssh/authorized_keys"
            chmod 0600 "/home/$account/.ssh/authorized_keys"
        done
    fi
    /usr/sbin/sshd -E /var/log/sshd.log
}
