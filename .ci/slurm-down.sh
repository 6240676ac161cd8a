#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by .ci/slurm-up.sh.
#
#   .ci/slurm-down.sh           # cancel jobs, stop slurmd + slurmctld (munged keeps running)
#   .ci/slurm-down.sh --munge   # ... and stop munged too
#
# Uses the pid files in $SLURM_STATE_DIR (default /tmp/glm-slurm).  Never fails
# when the cluster is already down.
set -uo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

STATE="${SLURM_STATE_DIR:-/tmp/glm-slurm}"
STOP_MUNGE=0
[ "${1:-}" = "--munge" ] && STOP_MUNGE=1

say() { echo "slurm-down: $*"; }

# shellcheck source=slurm-lib.sh
. "$(dirname "$0")/slurm-lib.sh"

stop() {  # stop <name> <pidfile>: SIGTERM, wait up to 10 s, then SIGKILL
    local name=$1 pidfile=$2 pid
    if ! pid=$(live_pid "$pidfile" "$name"); then
        rm -f "$pidfile"
        return 0
    fi
    kill "$pid" 2>/dev/null
    for _ in $(seq 100); do
        [ -d "/proc/$pid" ] || break
        sleep 0.1
    done
    if [ -d "/proc/$pid" ]; then
        say "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
        kill -9 "$pid" 2>/dev/null
        sleep 0.2
    fi
    rm -f "$pidfile"
    say "stopped $name (pid $pid)"
}

# Cancel jobs first so that no job steps (slurmstepd) outlive the daemons.
if live_pid "$STATE/slurmctld.pid" slurmctld >/dev/null && [ -f "$STATE/slurm.conf" ]; then
    export SLURM_CONF="$STATE/slurm.conf"
    jobs=$(timeout 10 squeue -h -o %A 2>/dev/null)
    if [ -n "$jobs" ]; then
        say "cancelling jobs: ${jobs//$'\n'/ }"
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs 2>/dev/null
        for _ in $(seq 20); do
            [ -z "$(timeout 10 squeue -h -o %A 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
fi

stop slurmd "$STATE/slurmd.pid"
stop slurmctld "$STATE/slurmctld.pid"

if [ "$STOP_MUNGE" = 1 ]; then
    stop munged /run/munge/munged.pid
fi
exit 0
