#!/usr/bin/env bash
# Install one role's locked environment: locks/install.sh ROLE VENV (run from the repository root).
#
# ROLE is generation, training or control. The lock is locks/ROLE-cuda.txt where nvidia-smi exists and
# locks/ROLE-cpu.txt otherwise (locks/ROLE.txt when the role has one lock for both). `uv pip sync` makes the
# environment exactly the lock (hashes checked), then skyt1 itself is installed in editable mode without
# dependencies. A copy of the lock in VENV marks it done, so running this again is a no-op until the lock
# changes: a spot recovery installs exactly what the first attempt did.
# Environment: UV (the uv binary), PY (the Python to create VENV with), FIND_LINKS (where the CPU build of
# torch is found; CPU locks need it).
set -euo pipefail
role=$1 venv=$2
uv=${UV:-uv} py=${PY:-python3.11}
device=cpu
if command -v nvidia-smi >/dev/null 2>&1; then device=cuda; fi
lock=locks/$role-$device.txt
[ -f "$lock" ] || lock=locks/$role.txt
if [ ! -f "$lock" ]; then
  echo "no lock for role '$role' on $device (expected locks/$role-$device.txt or locks/$role.txt)" >&2
  exit 2
fi
stamp=$venv/.skyt1-$role.lock
if [ -f "$stamp" ] && cmp -s "$lock" "$stamp"; then
  echo "$venv: $role environment is up to date ($lock)"
  exit 0
fi
echo "$venv: installing the $role environment from $lock"
links=()
[ -n "${FIND_LINKS:-}" ] && links=(--find-links "$FIND_LINKS")
[ -x "$venv/bin/python" ] || "$uv" venv -q --python "$py" "$venv"
"$uv" pip sync -q --python "$venv/bin/python" --require-hashes "${links[@]}" "$lock"
"$uv" pip install -q --python "$venv/bin/python" --no-deps -e .
if [ "$device" = cpu ] && [ "$role" = training ]; then
  "$venv/bin/python" -m skyt1.training.cpu_fixups  # torchaudio's CUDA extension libraries
fi
cp "$lock" "$stamp"
