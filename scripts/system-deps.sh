#!/usr/bin/env bash
# Installs the Debian tools the tests use, and proves each one works by doing what the tests
# do with it (a package being "installed" is not enough: a cross compiler without its C
# library, or clang without its sanitizer runtimes, installs fine and then cannot link).
#
#   probe          what it does (as the tests do)                       Debian packages
#   venv           python3 -m venv with pip (Debian splits ensurepip out)  python3-venv
#   c-extension    compile a C file against Python.h (the C kernel is a    gcc python3-dev
#                  CPython extension, built by pip at install time)
#   aarch64        link a static aarch64 hello, run it under qemu-aarch64  gcc-aarch64-linux-gnu
#                                                                         libc6-dev-arm64-cross qemu-user
#   libfuzzer      link a libFuzzer + ASan + UBSan target with clang, run it  clang libclang-rt-N-dev
#   avr            build an ATmega328P ELF with avr-gcc/avr-libc          gcc-avr avr-libc binutils-avr
#   simavr         link a program against libsimavr + libelf              simavr libsimavr-dev libelf-dev
#   cortex-m       build a Cortex-M4 semihosting image, run it under       gcc-arm-none-eabi
#                  qemu-system-arm (firmware/mcu's startup + linker script)  libnewlib-arm-none-eabi
#                                                                         qemu-system-arm
#   systemd        systemd-analyze verifies a unit (tests/test_service.py)  systemd
#   llvm-mca       llvm-mca analyses an aarch64 SDOT loop (make            llvm-19 (any llvm works;
#                  arm-cost-model, tests/test_arm_cost_model.py)           19 has the Neoverse-N1 model)
#   chromium       headless Chromium renders a page (the studio's browser   chromium fonts-dejavu-core
#                  test drives it with Playwright; never 'playwright install')
#   portaudio      PortAudio's shared library is there (sounddevice, the    libportaudio2
#                  sound-level part, loads it)
#
# It installs what a failed probe needs (apt-get, as root or with passwordless sudo), then
# probes again. Each probe that still fails names what is missing. With CI=true a failed probe
# fails this script (exit 1): CI is never green with a test skipped for a missing tool.
# Without CI (a contributor without root) it only reports; the tests needing the tool then
# skip with that reason, and pytest -ra lists them.
#   scripts/system-deps.sh            probe, install what is missing, probe again
#   scripts/system-deps.sh --check    probe only (exit 1 if any probe fails)
#   scripts/system-deps.sh --python   only what making the .venv needs (venv, c-extension);
#                                     `make demo` runs this before it creates .venv
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
mcu="$root/firmware/mcu"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# clang's sanitizer and libFuzzer runtimes live in a package named after clang's major version
# (libclang-rt-14-dev on Debian 12, libclang-rt-19-dev on Debian 13).
clang_rt_pkg() {
  local major=""
  if command -v clang >/dev/null; then
    major=$(clang -dumpversion 2>/dev/null | cut -d. -f1)
  else
    major=$(apt-cache depends clang 2>/dev/null | sed -n 's/.*Depends: clang-\([0-9][0-9]*\)$/\1/p' | head -n1)
  fi
  echo "libclang-rt-${major:-14}-dev"
}

first_error() {  # the first line that says what went wrong, on one line
  { grep -m1 -E 'error|cannot|undefined' "$work/err" || head -n1 "$work/err"; } | head -c 200
}

probe_venv() {
  PKGS="python3-venv"
  "${PYTHON:-python3}" -c "import ensurepip, venv" 2>/dev/null ||
    { WHY="${PYTHON:-python3} has no venv/ensurepip"; return 1; }
}

probe_c_extension() {
  PKGS="gcc python3-dev"
  command -v gcc >/dev/null || { WHY="no C compiler (gcc): the C kernel would not be built and the object would run on numpy"; return 1; }
  local inc
  inc=$("${PYTHON:-python3}" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
  printf '#include <Python.h>\nint main(void){return PY_MAJOR_VERSION != 3;}\n' >"$work/ext.c"
  gcc -I"$inc" -c -o "$work/ext.o" "$work/ext.c" 2>"$work/err" ||
    { WHY="cannot compile against Python.h ($inc): $(first_error)"; return 1; }
}

probe_aarch64() {
  PKGS="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
  command -v aarch64-linux-gnu-gcc >/dev/null || { WHY="aarch64-linux-gnu-gcc not found"; return 1; }
  command -v qemu-aarch64 >/dev/null || { WHY="qemu-aarch64 not found (qemu-user)"; return 1; }
  printf '#include <stdio.h>\nint main(void){puts("aarch64 ok");return 0;}\n' >"$work/hello.c"
  if ! aarch64-linux-gnu-gcc -static -O2 -o "$work/hello-a64" "$work/hello.c" 2>"$work/err"; then
    WHY="static aarch64 link failed (C library for the cross compiler: libc6-dev-arm64-cross): $(grep -m1 -o 'cannot find [^ ]*' "$work/err" || first_error)"
    return 1
  fi
  [ "$(qemu-aarch64 -cpu cortex-a72 "$work/hello-a64" 2>&1)" = "aarch64 ok" ] ||
    { WHY="qemu-aarch64 did not run a static aarch64 binary"; return 1; }
}

probe_libfuzzer() {
  PKGS="clang $(clang_rt_pkg)"
  command -v clang >/dev/null || { WHY="clang not found"; return 1; }
  cat >"$work/fuzz.c" <<'EOF'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return n > 0 && d[0] == 0xFF && n > 9999; }
EOF
  if ! clang -g -O1 -fsanitize=fuzzer,address,undefined -o "$work/fuzz" "$work/fuzz.c" 2>"$work/err"; then
    WHY="clang cannot link libFuzzer + ASan ($(clang_rt_pkg)): $(grep -m1 -o 'cannot find [^ ]*' "$work/err" || first_error)"
    return 1
  fi
  "$work/fuzz" -runs=100 >/dev/null 2>&1 || { WHY="a libFuzzer + ASan binary did not run"; return 1; }
}

probe_avr() {
  PKGS="gcc-avr avr-libc binutils-avr"
  command -v avr-gcc >/dev/null || { WHY="avr-gcc not found (gcc-avr)"; return 1; }
  printf '#include <avr/io.h>\nint main(void){DDRB=1;for(;;)PORTB^=1;}\n' >"$work/blink.c"
  avr-gcc -mmcu=atmega328p -Os -o "$work/blink.elf" "$work/blink.c" 2>"$work/err" ||
    { WHY="avr-gcc cannot build an ATmega328P ELF (avr-libc): $(first_error)"; return 1; }
  avr-size "$work/blink.elf" >/dev/null 2>&1 || { WHY="avr-size not found (binutils-avr)"; return 1; }
  command -v avr-objcopy >/dev/null || { WHY="avr-objcopy not found (binutils-avr)"; return 1; }
}

probe_simavr() {
  PKGS="simavr libsimavr-dev libelf-dev"
  [ -f /usr/include/simavr/sim_avr.h ] || { WHY="simavr headers not found (libsimavr-dev)"; return 1; }
  printf '#include <sim_avr.h>\nint main(void){avr_t *a = avr_make_mcu_by_name("atmega328p"); return a == 0;}\n' >"$work/sa.c"
  gcc -I/usr/include/simavr -o "$work/sa" "$work/sa.c" -lsimavr -lsimavrparts -lelf -lpthread -lutil 2>"$work/err" ||
    { WHY="cannot link against libsimavr/libelf (libsimavr-dev libelf-dev): $(first_error)"; return 1; }
  "$work/sa" >/dev/null 2>&1 || { WHY="simavr could not make an ATmega328P"; return 1; }
}

probe_cortex_m() {
  PKGS="gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
  command -v arm-none-eabi-gcc >/dev/null || { WHY="arm-none-eabi-gcc not found (gcc-arm-none-eabi)"; return 1; }
  command -v qemu-system-arm >/dev/null || { WHY="qemu-system-arm not found"; return 1; }
  printf '#include "semihost.h"\nint main(void){sh_puts("cortex-m ok\\n");return 0;}\n' >"$work/m.c"
  local cpu="-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16"
  # shellcheck disable=SC2086
  if ! arm-none-eabi-gcc $cpu -std=gnu11 -O2 -I"$mcu" -nostartfiles -specs=nano.specs -specs=nosys.specs \
       -L"$mcu" -T "$mcu/mps2.ld" -o "$work/m.elf" "$work/m.c" "$mcu/startup.c" "$mcu/semihost.c" -lm 2>"$work/err"; then
    WHY="arm-none-eabi-gcc cannot link a Cortex-M4 image (newlib: libnewlib-arm-none-eabi): $(first_error)"
    return 1
  fi
  timeout 30 qemu-system-arm -M mps2-an386 -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native -kernel "$work/m.elf" >"$work/out" 2>&1
  grep -q "cortex-m ok" "$work/out" || { WHY="qemu-system-arm did not run a Cortex-M4 semihosting image: $(tr "\n" " " <"$work/out" | head -c 200)"; return 1; }
}

probe_systemd() {
  PKGS="systemd"
  command -v systemd-analyze >/dev/null || { WHY="systemd-analyze not found (systemd)"; return 1; }
}

probe_llvm_mca() {
  PKGS="llvm-19"
  local mca
  mca=$(command -v llvm-mca-19 || command -v llvm-mca) || { WHY="llvm-mca not found"; return 1; }
  echo 'sdot v0.4s, v1.16b, v2.4b[0]' | "$mca" -mtriple=aarch64 -mcpu=cortex-a76 -mattr=+dotprod \
    >"$work/mca" 2>"$work/err" && grep -q "Block RThroughput" "$work/mca" ||
    { WHY="llvm-mca cannot analyse aarch64 code: $(first_error)"; return 1; }
}

probe_chromium() {
  PKGS="chromium fonts-dejavu-core"
  [ -x /usr/bin/chromium ] || { WHY="/usr/bin/chromium not found (chromium)"; return 1; }
  printf '<!doctype html><title>t</title><p id="p">chromium ok</p>\n' >"$work/page.html"
  timeout 60 /usr/bin/chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --user-data-dir="$work/chromium" \
    --dump-dom "file://$work/page.html" >"$work/out" 2>"$work/err"
  grep -q "chromium ok" "$work/out" || { WHY="headless chromium did not render a page: $(first_error)"; return 1; }
}

probe_portaudio() {
  PKGS="libportaudio2"
  ldconfig -p 2>/dev/null | grep -q 'libportaudio\.so\.2' ||
    { WHY="PortAudio's library not found (the sound-level part's sounddevice loads it)"; return 1; }
}

PROBES=(venv c-extension aarch64 libfuzzer avr simavr cortex-m systemd llvm-mca chromium portaudio)
if [ "${1:-}" = "--python" ]; then
  PROBES=(venv c-extension)
  shift
fi

run_probes() {  # sets FAILED (probe names), NEED (packages), prints one line per failure
  FAILED=() NEED=()
  local p
  for p in "${PROBES[@]}"; do
    WHY="" PKGS=""
    if "probe_${p//-/_}"; then
      [ -n "${VERBOSE:-}" ] && echo "system-deps: $p ok"
    else
      FAILED+=("$p"); NEED+=($PKGS)
      echo "system-deps: $p: $WHY (Debian: $PKGS)"
    fi
  done
}

fail_or_report() {
  if [ "${CI:-}" = "true" ]; then
    echo "system-deps: FAILED under CI=true: ${FAILED[*]} (see above); the tests needing them would not run" >&2
    exit 1
  fi
  echo "system-deps: the tests needing ${FAILED[*]} will be skipped (pytest -ra lists them)"
  exit 0
}

run_probes
if [ ${#FAILED[@]} -eq 0 ]; then
  echo "system-deps: all probes pass (${PROBES[*]})"
  exit 0
fi
[ "${1:-}" = "--check" ] && exit 1

if ! command -v apt-get >/dev/null; then
  echo "system-deps: no apt-get here; install the packages named above by hand"
  fail_or_report
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "system-deps: not root (and no passwordless sudo); install the packages named above"
    fail_or_report
  fi
fi
export DEBIAN_FRONTEND=noninteractive
log=${TMPDIR:-/tmp}/lanthorn-apt.log
echo "system-deps: installing ${NEED[*]} (log: $log)"
$SUDO apt-get update -qq >"$log" 2>&1 || echo "system-deps: apt-get update failed (see $log)"
# Packages are named explicitly, so --no-install-recommends loses nothing a probe needs.
# A clang runtime package named after clang's version is only known once clang is there.
if ! $SUDO apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "${NEED[@]}" >>"$log" 2>&1; then
  echo "system-deps: apt-get install failed: $(grep -E '^E:' "$log" | tail -n 3 | tr '\n' ' ')"
fi
if command -v clang >/dev/null && ! dpkg-query -W -f='${Status}' "$(clang_rt_pkg)" 2>/dev/null | grep -q "ok installed"; then
  $SUDO apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "$(clang_rt_pkg)" >>"$log" 2>&1 || true
fi
run_probes
if [ ${#FAILED[@]} -eq 0 ]; then
  echo "system-deps: all probes pass after installing (${PROBES[*]})"
  exit 0
fi
fail_or_report
