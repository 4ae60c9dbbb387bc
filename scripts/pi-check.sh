#!/usr/bin/env bash
# A maker's install on a Raspberry Pi, without a Pi:
#   make pi-check            (or scripts/pi-check.sh [EXTRA], EXTRA default pi5)
#
# 1. `python -m build --sdist` from a fresh clone of the committed HEAD (on this machine).
# 2. A new Debian bookworm arm64 root (Raspberry Pi OS bookworm is Debian bookworm arm64 with
#    Python 3.11) run under qemu-user-static (scripts/debian-root.sh).
# 3. Inside it, the README's "Installing on the object" steps exactly: the system packages,
#    a venv, `pip install 'lanthorn-*.tar.gz[pi5]'` (compiling the C kernel on "the Pi").
# 4. For each emulated core (QEMU_CPU: cortex-a72 = Pi 4, cortex-a76 = Pi 5): which C variant
#    the run-time dispatch picked, that the int8 outputs equal the numpy path's, and
#    `lanthorn selftest --sim`.
# Emulation is slow (the pip step compiles C under qemu: several minutes). Timing figures from
# here mean nothing; only which variant ran and that the integers agree. KEEP=1 keeps the root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
extra=${1:-pi5}
log=${LOG:-$repo/out/pi-check.log}
mkdir -p "$(dirname "$log")"
. "$here/root-work.sh" pi

python=${PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || python=python3
git clone -q --no-local "$repo" "$work/clone"
"$python" -m build --sdist --outdir "$work/dist" "$work/clone" >"$log" 2>&1 ||
  { echo "pi-check: python -m build --sdist failed (log: $log; needs the 'build' package: make test sets it up)"; exit 1; }
sdist=$(ls "$work"/dist/lanthorn-*.tar.gz)
echo "pi-check: built $(basename "$sdist") from $(git -C "$repo" rev-parse --short HEAD)"

bash "$here/debian-root.sh" arm64 "$root"
mount_in proc /proc
mount_in /dev /dev
cp "$sdist" "$work/clone/constraints.txt" "$root/root/"

inside() {  # inside QEMU_CPU COMMAND...
  local cpu=$1; shift
  QEMU_CPU=$cpu chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 QEMU_CPU="$cpu" \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DEFAULT_TIMEOUT=180 \
    PATH=/opt/lanthorn/bin:/usr/local/bin:/usr/bin:/bin "$@"
}

# The README's "Installing on the object", step by step.
step() { echo "pi-check: $*" | tee -a "$log"; }
step "apt-get install python3-venv python3-dev gcc (the C kernel and spidev compile on the Pi)"
inside cortex-a72 bash -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  --no-install-recommends python3-venv python3-dev gcc" >>"$log" 2>&1
step "python3 -m venv /opt/lanthorn && pip install -c constraints.txt '$(basename "$sdist")[$extra]'"
start=$(date +%s)
inside cortex-a72 bash -c "python3 -m venv /opt/lanthorn && \
  /opt/lanthorn/bin/pip install -q --disable-pip-version-check -c /root/constraints.txt \
  '/root/$(basename "$sdist")[$extra]'" >>"$log" 2>&1 ||
  { echo "pi-check: pip install failed (log: $log)"; tail -n 20 "$log"; exit 1; }
step "installed in $(( $(date +%s) - start )) s (under emulation)"

status=0
printf '\n| QEMU_CPU | core of | C variant | int8 outputs = numpy | selftest --sim |\n|---|---|---|---|---|\n'
for pair in cortex-a72:"Pi 4" cortex-a76:"Pi 5"; do
  cpu=${pair%%:*} board=${pair#*:}
  variant=$(inside "$cpu" python3 -c '
import numpy as np
from lanthorn.device.engine import runtime
from lanthorn.device.models import DEFAULT_BUNDLE
c = runtime.load(DEFAULT_BUNDLE)                    # auto: the C kernel, best variant
n = runtime.load(DEFAULT_BUNDLE, backend="numpy")
t = c.graph.tensors[c.graph.inputs[0]]
xs = np.random.default_rng(5).integers(-128, 128, (64,) + tuple(t.shape)).astype(t.dtype)
same = all(np.array_equal(a, b) for x in xs
           for a, b in zip(c.run_quantized([x]), n.run_quantized([x])))
print(c.backend, "yes" if same else "NO")' 2>>"$log") || variant="error see-log"
  if inside "$cpu" lanthorn selftest --sim >>"$log" 2>&1; then st=OK; else st=FAILED; status=1; fi
  set -- $variant
  [ "${2:-}" = yes ] || status=1
  printf '| %s | %s | %s | %s | %s |\n' "$cpu" "$board" "${1:-?}" "${2:-?}" "$st"
done
exit $status
