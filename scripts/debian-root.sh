#!/usr/bin/env bash
# A throwaway Debian root that has never seen this project, for checks "from nothing":
#   scripts/debian-root.sh ARCH DEST     ARCH amd64 or arm64; DEST must not exist
#
# The first call debootstraps a pristine root (Debian bookworm, the suite Raspberry Pi OS and
# this project's machines use, minbase + python3 + make + git, nothing else) into
# $LANTHORN_ROOTS (default /var/tmp/lanthorn-roots) and keeps it; every call then copies it to
# DEST, so each check starts from the same untouched root. An arm64 root runs on x86 through
# qemu-user-static and binfmt_misc, registered here when missing (the F flag lets chroot
# use the host's emulator). Needs root and the Debian package mirror.
set -euo pipefail
arch=${1:?usage: $0 amd64|arm64 DEST}
dest=${2:?usage: $0 amd64|arm64 DEST}
suite=${LANTHORN_SUITE:-bookworm}
mirror=${LANTHORN_MIRROR:-http://deb.debian.org/debian}
roots=${LANTHORN_ROOTS:-/var/tmp/lanthorn-roots}
pristine="$roots/$suite-$arch"

[ "$(id -u)" -eq 0 ] || { echo "$0: needs root (debootstrap, chroot, mounts)" >&2; exit 2; }
[ ! -e "$dest" ] || { echo "$0: $dest exists; give a new folder" >&2; exit 2; }

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ "$arch" != "$(dpkg --print-architecture)" ]; then
  [ -x /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || need+=(qemu-user-static)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "debian-root: installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${need[@]}" >/dev/null
fi

if [ "$arch" = arm64 ] && [ "$(dpkg --print-architecture)" != arm64 ]; then
  binfmt=/proc/sys/fs/binfmt_misc
  [ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
  if [ ! -e "$binfmt/qemu-aarch64" ]; then
    cat /usr/lib/binfmt.d/qemu-aarch64.conf >"$binfmt/register"
  fi
fi

if [ ! -e "$pristine/.complete" ]; then
  echo "debian-root: debootstrap $suite $arch into $pristine (once; kept for later checks)"
  rm -rf "$pristine"
  mkdir -p "$roots"
  debootstrap --arch="$arch" --variant=minbase --include=python3,make,git,ca-certificates \
    "$suite" "$pristine" "$mirror" >"$roots/debootstrap-$arch.log" 2>&1 ||
    { echo "debian-root: debootstrap failed, see $roots/debootstrap-$arch.log" >&2; exit 1; }
  touch "$pristine/.complete"
fi
mkdir -p "$(dirname "$dest")"
cp -a "$pristine" "$dest"
rm -f "$dest/.complete"
cp /etc/resolv.conf "$dest/etc/resolv.conf"
# The root trusts what this machine trusts: local CAs (e.g. a proxy's) join its bundle, which
# pip is pointed at (PIP_CERT) like here.
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  cp /usr/local/share/ca-certificates/*.crt "$dest/usr/local/share/ca-certificates/"
  chroot "$dest" update-ca-certificates >/dev/null 2>&1 ||
    echo "debian-root: update-ca-certificates failed in $dest" >&2
fi
echo "debian-root: $dest ($suite $arch, $(chroot "$dest" python3 --version))"
