#!/usr/bin/env bash
# The README's two commands on a machine that has never seen this project:
#   make fresh-check          (or scripts/fresh-check.sh [REV])
#
# A new Debian bookworm root (scripts/debian-root.sh: minbase + python3 + make + git, nothing
# else), `git clone` of this repository's committed HEAD (or REV) into it, then inside it as
# root: `make demo`, then `CI=true make test` with `pytest -ra` listing anything not passed.
# Whatever the tests need must come from the project's own files (system-deps.sh, the
# extras): a tool installed by hand on this machine is not in that root.
#
# What the root borrows from this machine, as every machine of this project's kind has it:
# the package mirrors (and the CAs this machine trusts for them), and the PyTorch CPU wheel
# directory that pip finds through PIP_FIND_LINKS (torch==2.13.0 from the registry alone is a
# multi-GB CUDA build).
# Output: the log in $LOG (default out/fresh-check.log) and the times of both commands.
# KEEP=1 keeps the root for a look afterwards.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
rev=${1:-HEAD}
log=${LOG:-$repo/out/fresh-check.log}
mkdir -p "$(dirname "$log")"
. "$here/root-work.sh" fresh

bash "$here/debian-root.sh" amd64 "$root"
git clone -q --no-local "$repo" "$root/root/lanthorn"
git -C "$root/root/lanthorn" checkout -q "$rev"
echo "fresh-check: clone of $(git -C "$repo" rev-parse --short "$rev") in a new bookworm root"

mount_in proc /proc
mount_in /sys /sys
mount_in /dev /dev
wheels=""
if [ -n "${PIP_FIND_LINKS:-}" ] && [ -d "$PIP_FIND_LINKS" ]; then
  mount_in "$PIP_FIND_LINKS" /opt/machine-wheels ro
  wheels=/opt/machine-wheels
fi

inside() {
  chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DEFAULT_TIMEOUT=180 \
    ${wheels:+PIP_FIND_LINKS=$wheels} "$@"
}

: >"$log"
status=0
for step in "make demo" "CI=true make test"; do
  echo "fresh-check: $step" | tee -a "$log"
  start=$(date +%s)
  if inside bash -c "cd /root/lanthorn && $step" >>"$log" 2>&1; then
    echo "fresh-check: $step passed in $(( $(date +%s) - start )) s" | tee -a "$log"
  else
    echo "fresh-check: $step FAILED after $(( $(date +%s) - start )) s (log: $log)" | tee -a "$log"
    status=1
    break
  fi
done
grep -E "^(SKIPPED|FAILED|ERROR)|passed|failed" "$log" | tail -n 15 || true
exit $status
