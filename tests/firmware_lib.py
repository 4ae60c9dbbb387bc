"""Builds firmware/src/protocol.c with the host compiler and loads it with ctypes.

Shared by the protocol and fuzz-regression tests so both drive the very C code that runs
on the companion (same source file, host gcc, sanitizer-free -O2 with -Wall -Werror).
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
SRC = FIRMWARE / "src"


class LpFrame(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint8), ("seq", ctypes.c_uint8), ("len", ctypes.c_uint8),
                ("payload", ctypes.POINTER(ctypes.c_uint8))]


class LpSeq(ctypes.Structure):
    _fields_ = [("last", ctypes.c_uint8), ("synced", ctypes.c_uint8)]


def build_protocol_lib(out_dir: Path) -> ctypes.CDLL:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no host C compiler (gcc) to build firmware/src/protocol.c")
    lib_path = Path(out_dir) / "liblanthorn_protocol.so"
    subprocess.run([cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                    str(SRC / "protocol.c"), "-o", str(lib_path)], check=True)
    lib = ctypes.CDLL(str(lib_path))
    u8p, sz = ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t
    lib.lp_crc16.argtypes, lib.lp_crc16.restype = [ctypes.c_char_p, sz], ctypes.c_uint16
    lib.lp_cobs_encode.argtypes, lib.lp_cobs_encode.restype = [ctypes.c_char_p, sz, u8p, sz], sz
    lib.lp_cobs_decode.argtypes, lib.lp_cobs_decode.restype = [ctypes.c_char_p, sz, u8p, sz], ctypes.c_int
    lib.lp_frame_build.argtypes = [ctypes.c_uint8, ctypes.c_uint8, ctypes.c_char_p, sz, u8p, sz]
    lib.lp_frame_build.restype = ctypes.c_int
    lib.lp_frame_parse.argtypes = [ctypes.c_char_p, sz, u8p, sz, ctypes.POINTER(LpFrame)]
    lib.lp_frame_parse.restype = ctypes.c_int
    lib.lp_payload_check.argtypes = [ctypes.POINTER(LpFrame), ctypes.c_uint16]
    lib.lp_payload_check.restype = ctypes.c_int
    lib.lp_rx_size.restype = sz
    lib.lp_rx_init.argtypes = [ctypes.c_void_p]
    lib.lp_rx_feed.argtypes = [ctypes.c_void_p, ctypes.c_uint8, ctypes.POINTER(LpFrame)]
    lib.lp_rx_feed.restype = ctypes.c_int
    lib.lp_seq_reset.argtypes = [ctypes.POINTER(LpSeq)]
    lib.lp_seq_check.argtypes, lib.lp_seq_check.restype = [ctypes.POINTER(LpSeq), ctypes.c_uint8], ctypes.c_int
    lib.lp_sensor_payload.argtypes = [u8p, ctypes.c_uint32, ctypes.c_uint16, ctypes.c_uint8,
                                      ctypes.c_uint8, ctypes.POINTER(ctypes.c_uint16),
                                      ctypes.POINTER(ctypes.c_uint16)]
    lib.lp_sensor_payload.restype = sz
    lib.lp_limit_power.argtypes = [u8p, ctypes.c_uint16, ctypes.c_uint16]
    lib.lp_limit_power.restype = ctypes.c_int
    lib.lp_apply_brightness.argtypes = [u8p, ctypes.c_uint16, ctypes.c_uint8]
    return lib


class CProtocol:
    """Pythonic wrappers around the C functions, returning bytes / (code, frame)."""

    def __init__(self, lib: ctypes.CDLL):
        self.lib = lib

    def build(self, type_: int, seq: int, payload: bytes, cap: int = 512) -> bytes | int:
        out = (ctypes.c_uint8 * cap)()
        n = self.lib.lp_frame_build(type_, seq, payload, len(payload), out, cap)
        return bytes(out[:n]) if n > 0 else n

    def parse(self, encoded: bytes):
        """Returns (0, (type, seq, payload)) or (negative error, None)."""
        scratch = (ctypes.c_uint8 * 256)()
        f = LpFrame()
        r = self.lib.lp_frame_parse(encoded, len(encoded), scratch, 256, ctypes.byref(f))
        if r != 0:
            return r, None
        return 0, (f.type, f.seq, bytes(f.payload[:f.len]))

    def payload_check(self, type_: int, payload: bytes, n_leds: int = 24) -> int:
        buf = (ctypes.c_uint8 * max(1, len(payload))).from_buffer_copy(payload.ljust(1, b"\0"))
        f = LpFrame(type_, 0, len(payload), ctypes.cast(buf, ctypes.POINTER(ctypes.c_uint8)))
        return self.lib.lp_payload_check(ctypes.byref(f), n_leds)

    def stream(self, data: bytes) -> list:
        """Feed bytes through lp_rx_feed; list of (type, seq, payload) or negative error codes."""
        rx = ctypes.create_string_buffer(self.lib.lp_rx_size())
        self.lib.lp_rx_init(rx)
        f = LpFrame()
        out = []
        for b in data:
            r = self.lib.lp_rx_feed(rx, b, ctypes.byref(f))
            if r == 1:
                out.append((f.type, f.seq, bytes(f.payload[:f.len])))
            elif r < 0:
                out.append(r)
        return out


def build_firmware(out_dir: Path, *targets: str) -> subprocess.CompletedProcess:
    """``make -C firmware BUILD=out_dir targets``: the AVR firmware with Debian's avr-gcc
    (and the simavr harness when asked). Incremental, so tests sharing ``out_dir`` build once."""
    for tool in ("make", "avr-gcc", "avr-size", "avr-objcopy"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (Debian: gcc-avr avr-libc; scripts/system-deps.sh)")
    if "harness" in targets:
        if not Path("/usr/include/simavr/sim_avr.h").exists():
            pytest.skip("libsimavr-dev not installed (needed to build the simavr harness)")
        if not Path("/usr/include/libelf.h").exists():
            pytest.skip("libelf-dev not installed (needed to build the simavr harness)")
        if shutil.which("gcc") is None:
            pytest.skip("no host gcc to build the simavr harness")
    return subprocess.run(["make", "--no-print-directory", "-C", str(FIRMWARE), f"BUILD={out_dir}",
                           *targets], check=True, capture_output=True, text=True)


class Harness:
    """The simavr harness running the firmware ELF: its pty, and its stdout lines collected by
    a thread (the pipe must be drained or the simulation would stall on a full pipe)."""

    def __init__(self, build_dir: Path, *args: str):
        import threading
        self.lines: list[str] = []
        self.proc = subprocess.Popen([str(Path(build_dir) / "simavr-harness"), *args,
                                      str(Path(build_dir) / "lanthorn-companion.elf")],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._pty = threading.Event()
        self.pty = None
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()
        if not self._pty.wait(10):
            self.stop()
            raise RuntimeError(f"simavr harness printed no PTY line: {self.lines[:10]}")

    def _drain(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            if line.startswith("PTY "):
                self.pty = line[4:]
                self._pty.set()

    def led_frames(self) -> list[dict]:
        """The LEDS lines as dicts (t_ms, bits, bad, t0h, t1h, period as (min, max), grb bytes)."""
        out = []
        for line in list(self.lines):
            if not line.startswith("LEDS "):
                continue
            d = dict(kv.split("=", 1) for kv in line.split()[1:])
            rec = {k: int(d[k]) for k in ("t_ms", "bits", "bad")}
            for k in ("t0h", "t1h", "period"):
                lo, hi = d[k].split("..")
                rec[k] = (int(lo), int(hi))
            rec["grb"] = bytes.fromhex(d["grb"])
            out.append(rec)
        return out

    def stop(self) -> str:
        """Stop the simulation (SIGTERM; it prints SUMMARY) and return the SUMMARY line."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._thread.join(5)
        return next((x for x in self.lines if x.startswith("SUMMARY ")), "")
