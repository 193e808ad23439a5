#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for tests/test_slurm.py (and for trying the slurm profile).
#   tests/slurm/localhost.sh start   install Debian's slurmctld, slurmd, slurm-client and munge if missing,
#                                    write a config under $LTH_SLURM_DIR and start munged, slurmctld and slurmd
#   tests/slurm/localhost.sh stop    stop the daemons by their PID files
# Clients find the cluster through SLURM_CONF=$LTH_SLURM_DIR/slurm.conf, and inside jobs (where the
# executor plugin drops SLURM_* variables) through the copy slurmd keeps in /run/slurm/conf ("configless"
# mode): nothing is written to /etc/slurm. No systemd, no cgroups, no accounting database: process
# tracking by /proc, and one fake GPU (gres gpu:1 on /dev/null) so that jobs asking for a GPU are
# scheduled. Needs root (it installs packages and runs the daemons).
set -euo pipefail
# The daemons and runuser live in sbin, which a non-login root shell's PATH may lack.
export PATH=$PATH:/usr/sbin:/sbin
DIR=${LTH_SLURM_DIR:-/tmp/lth-slurm}
export SLURM_CONF=$DIR/slurm.conf

stop() {
    for daemon in slurmd slurmctld; do
        if [ -f "$DIR/$daemon.pid" ]; then kill "$(cat "$DIR/$daemon.pid")" 2>/dev/null || true; rm -f "$DIR/$daemon.pid"; fi
    done
    if [ -f /run/munge/munged.pid ]; then kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true; fi
}

if [ "${1:-start}" = stop ]; then stop; exit 0; fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
        || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
fi

stop  # a cluster left by an earlier run
host=$(hostname -s)
cpus=$(nproc)
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p "$DIR/state" "$DIR/spool"
cat > "$SLURM_CONF" <<CONF
ClusterName=lth-test
SlurmctldParameters=enable_configless
MpiDefault=none
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
GresTypes=gpu
ReturnToService=2
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
echo "NodeName=$host Name=gpu File=/dev/null" > "$DIR/gres.conf"

mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
fi
runuser -u munge -- munged
slurmctld
env -u SLURM_CONF slurmd --conf-server 127.0.0.1
for _ in $(seq 60); do  # the node registers within seconds
    if sinfo -h -N -o "%T" 2>/dev/null | grep -qx idle; then echo "SLURM_CONF=$SLURM_CONF"; exit 0; fi
    sleep 1
done
echo "the SLURM node did not come up; see $DIR/slurmctld.log and $DIR/slurmd.log" >&2
exit 1
