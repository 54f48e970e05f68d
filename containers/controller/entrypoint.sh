#!/bin/bash
# Controller start-up: munge, MariaDB, slurmdbd (waits for it), then slurmctld. slurmctld runs as a
# daemon, not as the container's main process, so a test can stop it (`scontrol shutdown slurmctld`)
# and see what clients report while the controller host is up but the controller is not.
. /usr/local/lib/testbed-init.sh
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
mariadbd --user=mysql --skip-networking >/var/log/mariadb.log 2>&1 &
for _ in $(seq 1 120); do mariadb -e 'select 1' >/dev/null 2>&1 && break; sleep 0.25; done
slurmdbd
for _ in $(seq 1 120); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.25; done
sacctmgr -i add cluster "$(sed -n 's/^ClusterName=//p' /etc/slurm/slurm.conf)" >/dev/null 2>&1 || true
slurmctld -i
exec sleep infinity
