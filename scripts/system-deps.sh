#!/usr/bin/env bash
# Installs the Debian tools the tests use to prove bit-exactness on other machines:
#   gcc-aarch64-linux-gnu + qemu-user     C kernel cross-compiled for a Pi 4/5, run under qemu
#   gcc-avr avr-libc arduino-core-avr simavr   the microcontroller companion, run under simavr
#   libsimavr-dev libelf-dev                    firmware/sim/harness.c (pty, MPR121, WS2812 models)
#   clang                                       libFuzzer for the companion's frame decoder
#   gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm   the kernel on a Cortex-M
# Without root or apt it installs nothing and says so; the tests that need a missing tool
# are then skipped with a visible reason (pytest -ra lists them).
set -u
PKGS=(gcc-aarch64-linux-gnu qemu-user gcc-avr avr-libc arduino-core-avr simavr
      libsimavr-dev libelf-dev clang
      gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system-deps: all present"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "system-deps: no apt-get; missing ${missing[*]} (the tests needing them will be skipped)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "system-deps: not root; missing ${missing[*]} (the tests needing them will be skipped)"
    exit 0
  fi
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null 2>&1 || true
if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/lanthorn-apt.log 2>&1; then
  echo "system-deps: apt-get failed (see /tmp/lanthorn-apt.log); the tests needing these tools will be skipped"
fi
exit 0
