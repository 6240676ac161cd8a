#!/usr/bin/env bash
# Start a real single-node SLURM cluster on this machine (for CI and tests).
#
#   sudo .ci/slurm-up.sh            # state in $SLURM_STATE_DIR (default /tmp/glm-slurm)
#   sudo .ci/slurm-down.sh          # stop it again
#
# Needs root and Debian/Ubuntu packages (installed on first use):
# slurmctld slurmd slurm-client munge.  The config is written to
# $SLURM_STATE_DIR/slurm.conf AND to /etc/slurm/slurm.conf, so sbatch, squeue,
# sinfo and scontrol work in any shell without SLURM_CONF.  One node
# ($(hostname -s)), one partition "debug" (default), no accounting (sacct does
# not work; finished jobs are logged to $SLURM_STATE_DIR/jobcomp.log instead).
# Running it again while the cluster is up with the same config does nothing.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"  # the daemons live in sbin

STATE="${SLURM_STATE_DIR:-/tmp/glm-slurm}"
SYS_CONF=/etc/slurm/slurm.conf
CONF="$STATE/slurm.conf"
START_TIMEOUT="${SLURM_START_TIMEOUT:-60}"
T0=$(date +%s%N)

say() { echo "slurm-up: $*"; }
elapsed() { awk -v a="$T0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }

dump_logs() {
    local f
    for f in "$STATE/slurmctld.log" "$STATE/slurmd.log"; do
        if [ -f "$f" ]; then
            echo "----- tail -n 40 $f -----" >&2
            tail -n 40 "$f" >&2 || true
        fi
    done
    echo "----- sinfo -----" >&2
    sinfo -N -l >&2 2>&1 || true
}

STARTED=0
die() {
    echo "slurm-up: ERROR: $*" >&2
    dump_logs
    if [ "$STARTED" = 1 ]; then   # do not leave a half-started cluster behind
        SLURM_STATE_DIR="$STATE" "$(dirname "$0")/slurm-down.sh" >&2 || true
    fi
    exit 1
}

# shellcheck source=slurm-lib.sh
. "$(dirname "$0")/slurm-lib.sh"

[ "$(id -u)" = 0 ] || { echo "slurm-up: must be run as root" >&2; exit 1; }

# ---------------------------------------------------------------- packages
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
    || ! command -v sbatch >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    say "installing slurmctld slurmd slurm-client munge ..."
    # Keep the packages' init scripts / units from starting anything during
    # the install (we start the daemons ourselves below).
    policy_added=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_added=1
    fi
    rc=0
    apt-get update -qq || rc=$?
    if [ "$rc" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            slurmctld slurmd slurm-client munge >/dev/null || rc=$?
    fi
    [ "$policy_added" = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ "$rc" = 0 ] || { echo "slurm-up: ERROR: apt-get failed ($rc)" >&2; exit 1; }
fi

# ---------------------------------------------------------------- munge
MUNGE_KEY=/etc/munge/munge.key
if [ ! -s "$MUNGE_KEY" ]; then
    say "creating $MUNGE_KEY"
    install -d -o munge -g munge -m 0700 /etc/munge
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile="$MUNGE_KEY" --force
    else
        dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
    fi
fi
chown munge:munge "$MUNGE_KEY"
chmod 0400 "$MUNGE_KEY"

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_ok; then
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    # --force: start even if a stale socket/lock from a dead munged is left over
    runuser -u munge -- munged --force || die "munged failed to start (see /var/log/munge/munged.log)"
    for _ in $(seq 50); do munge_ok && break; sleep 0.2; done
    munge_ok || die "munge -n | unmunge does not work (see /var/log/munge/munged.log)"
fi

# ---------------------------------------------------------------- config
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(( $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) / 1024 - 512 ))
[ "$MEM_MB" -ge 256 ] || MEM_MB=256
DEF_MEM=$(( MEM_MB / CPUS ))   # jobs without --mem get this per CPU, not the whole node

getent hosts "$HOST" >/dev/null 2>&1 \
    || die "hostname '$HOST' does not resolve; add it to /etc/hosts (e.g. '127.0.0.1 $HOST')"

mkdir -p "$STATE/ctld" "$STATE/spool"
chmod 0755 "$STATE"

NEW_CONF=$(cat <<EOF
# Written by .ci/slurm-up.sh: single-node test cluster (glm). Do not edit.
ClusterName=glm
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmdParameters=config_overrides
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# scheduling: try pending jobs every second; cancel jobs whose dependency can never be
# met (e.g. afterok on a failed job) instead of leaving them PENDING forever
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
DependencyParameters=kill_invalid_depend
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$DEF_MEM
# finished jobs stay visible (scontrol show job / squeue -j) for MinJobAge seconds, then
# go at the next purge (about once a minute); short, as on a busy cluster
MinJobAge=2
KillWait=5
InactiveLimit=0
Waittime=0
SlurmdTimeout=60
MessageTimeout=10
# no accounting daemon: sacct does not work; job completions go to a text file
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/jobcomp.log
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
)

ctld_pid=$(live_pid "$STATE/slurmctld.pid" slurmctld || true)
slurmd_pid=$(live_pid "$STATE/slurmd.pid" slurmd || true)

if [ -n "$ctld_pid" ] && [ -n "$slurmd_pid" ] && [ -f "$CONF" ] \
    && [ "$(cat "$CONF")" = "$NEW_CONF" ] && cmp -s "$CONF" "$SYS_CONF" \
    && scontrol ping >/dev/null 2>&1; then
    say "already running (slurmctld pid $ctld_pid, slurmd pid $slurmd_pid)"
else
    if [ -n "$ctld_pid" ] || [ -n "$slurmd_pid" ]; then
        say "restarting (config changed or cluster unhealthy)"
        SLURM_STATE_DIR="$STATE" "$(dirname "$0")/slurm-down.sh"
    fi
    # someone else's daemons (e.g. a systemd unit) would hold ports 6817/6818
    for d in slurmctld slurmd; do
        if pids=$(pgrep -x "$d"); then
            die "a $d not started by this script is running (pid ${pids//$'\n'/ }); stop it first"
        fi
    done

    printf '%s\n' "$NEW_CONF" >"$CONF"
    mkdir -p "$(dirname "$SYS_CONF")"
    if [ -f "$SYS_CONF" ] && ! grep -q '^# Written by .ci/slurm-up.sh' "$SYS_CONF" \
        && [ ! -e "$SYS_CONF.orig" ]; then
        cp -p "$SYS_CONF" "$SYS_CONF.orig"
        say "saved the existing $SYS_CONF as $SYS_CONF.orig"
    fi
    cp "$CONF" "$SYS_CONF"
    chmod 0644 "$CONF" "$SYS_CONF"
    rm -f "$STATE/slurmctld.log" "$STATE/slurmd.log"

    # -c: start from a clean state (no old jobs), -i: ignore unreadable state
    STARTED=1
    slurmctld -c -i -f "$CONF" || die "slurmctld failed to start"
    slurmd -c -f "$CONF" || die "slurmd failed to start"
fi

# ---------------------------------------------------------------- wait for idle
export SLURM_CONF="$CONF"
deadline=$(( $(date +%s) + START_TIMEOUT ))
state=""
while :; do
    state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null | head -n 1 || true)
    case "$state" in
        idle|mixed|allocated) break ;;
        down|drained|draining|drain|fail|failing)   # responding, but marked unusable
            scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
        die "node $HOST not idle after ${START_TIMEOUT}s (state: '${state:-no answer}')"
    fi
    if [ $(( $(date +%s) + START_TIMEOUT - deadline )) -ge 5 ]; then   # daemons had 5 s to write pid files
        live_pid "$STATE/slurmctld.pid" slurmctld >/dev/null || die "slurmctld is not running"
        live_pid "$STATE/slurmd.pid" slurmd >/dev/null || die "slurmd is not running"
    fi
    sleep 0.5
done

say "up: node=$HOST CPUs=$CPUS RealMemory=${MEM_MB}MB partition=debug state=$state" \
    "conf=$SYS_CONF (copy of $CONF) in $(elapsed)s"
