#!/usr/bin/env bash
# Make sure Quantum ESPRESSO's pw.x and the pslibrary pseudopotentials are available.
# Installs Debian's quantum-espresso + quantum-espresso-data with apt when pw.x is missing.
set -euo pipefail
PSEUDO_DIR="${ESPRESSO_PSEUDO:-/usr/share/espresso/pseudo}"
if command -v pw.x >/dev/null 2>&1 && [ -d "$PSEUDO_DIR" ]; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
if command -v apt-get >/dev/null 2>&1 && { [ -z "$SUDO" ] || $SUDO true 2>/dev/null; }; then
    echo "pw.x not found: installing Debian quantum-espresso and quantum-espresso-data with apt"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq quantum-espresso quantum-espresso-data >/dev/null
    command -v pw.x >/dev/null && echo "installed $(command -v pw.x)"
else
    cat >&2 <<MSG
error: Quantum ESPRESSO (pw.x) was not found and apt is not available here.
  Install it one of these ways, then run the command again:
    - conda/mamba:   mamba install -c conda-forge qe     (pseudopotentials: set ESPRESSO_PSEUDO)
    - an HPC module: module load quantum-espresso         (and set dft.qe.executable if not pw.x)
    - Debian/Ubuntu: sudo apt-get install quantum-espresso quantum-espresso-data
  The pseudopotential directory is \$ESPRESSO_PSEUDO or dft.qe.pseudo_dir (default $PSEUDO_DIR).
MSG
    exit 1
fi
