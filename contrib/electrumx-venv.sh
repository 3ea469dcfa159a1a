#!/usr/bin/env bash
# Creates .venv with ElectrumX 2.0 (PyPI `e-x`, LevelDB through plyvel) for the differential
# and third-party tests. Idempotent: does nothing when the venv already has it.
set -euo pipefail
venv=${1:-.venv}
if [ -x "$venv/bin/electrumx_server" ]; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check 'e-x[leveldb]==2.0.0'
"$venv/bin/electrumx_server" --version >/dev/null 2>&1 || test -x "$venv/bin/electrumx_server"
