#!/usr/bin/env bash
# Make sure a SLURM (slurmctld, slurmd, sbatch, squeue, scancel) and munge are installed, so that the
# test suite can start a one-node cluster on localhost (tests/test_slurm.py, tools/slurm_localhost.py).
# Installs Debian's slurm-wlm + munge (+ libpmix-dev, which SLURM's mpi/pmix plugin loads for
# `srun` MPI launches) with apt when missing. Never fatal: where they cannot be
# installed (no apt, not root and no password-less sudo) it says so and the SLURM tests skip.
set -uo pipefail
have_all() {
    for cmd in slurmctld slurmd sbatch squeue scancel munged; do
        command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || return 1
    done
    if command -v dpkg >/dev/null 2>&1; then
        dpkg -s libpmix-dev >/dev/null 2>&1 || return 1
    fi
}
if have_all; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || $SUDO true 2>/dev/null; }; then
    echo "SLURM/munge not found: installing Debian slurm-wlm and munge with apt (for the SLURM tests)"
    export DEBIAN_FRONTEND=noninteractive
    # the tests start their own daemons (private munge socket and ports), whatever the packages start
    $SUDO apt-get update -qq &&
        $SUDO apt-get install -y -qq slurm-wlm munge libpmix-dev >/dev/null
    if have_all; then
        echo "installed $(/usr/sbin/slurmctld -V 2>/dev/null) and munge"
        exit 0
    fi
    echo "warning: apt-get install slurm-wlm munge did not succeed; the SLURM tests will skip" >&2
else
    echo "note: SLURM (slurm-wlm) and munge are not installed and apt/root is not available here;" \
        "the SLURM tests will skip (sudo apt-get install slurm-wlm munge enables them)" >&2
fi
exit 0
