#!/usr/bin/env bash
# Create the virtual environment with pinned dependencies (constraints.txt).
# torch is installed first and alone, as the CPU build on machines without an NVIDIA GPU, so that
# mace-torch's plain `torch` requirement cannot pull several GB of CUDA wheels.
set -euo pipefail
VENV="${1:-.venv}"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    echo "error: dft2mlip needs Python >= 3.11 ($PYTHON is $("$PYTHON" --version 2>&1))." >&2
    echo "       set PYTHON=/path/to/python3.11 and run again." >&2
    exit 1
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)

TORCH_PIN="$(grep -E '^torch==' constraints.txt)"
if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "torch already installed: $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
elif command -v nvidia-smi >/dev/null 2>&1; then
    echo "NVIDIA GPU found: installing the default (CUDA) build of $TORCH_PIN"
    "${PIP[@]}" "$TORCH_PIN"
elif [ -n "${TORCH_CPU_INDEX:-}" ]; then
    echo "installing the CPU build of $TORCH_PIN from $TORCH_CPU_INDEX"
    "${PIP[@]}" "$TORCH_PIN" --index-url "$TORCH_CPU_INDEX"
else
    # Where pip is configured with a local CPU wheel (find-links) this is the CPU build; elsewhere
    # set TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu to avoid the CUDA wheels.
    echo "installing $TORCH_PIN (CPU machine; set TORCH_CPU_INDEX to force the CPU wheel index)"
    "${PIP[@]}" "$TORCH_PIN"
fi
"${PIP[@]}" -c constraints.txt -e '.[test,cluster]'
echo "virtual environment ready: $VENV"
