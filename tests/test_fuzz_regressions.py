"""The fuzzer's seeds and every crash it ever saved, replayed through the C decoder (the
companion's protocol.c, host-compiled, via ctypes) and the Python one: they must agree
frame by frame and error by error, and the C payload check must follow PROTOCOL.md. Plus a
short, bounded run of firmware/fuzz/run.sh itself (libFuzzer + ASan + UBSan)."""
from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from firmware_lib import FIRMWARE, CProtocol, build_protocol_lib

from lanthorn.hardware.companion import wire as P

FUZZ = FIRMWARE / "fuzz"
N_LEDS = 24
INPUTS = sorted(p for d in ("corpus", "regressions") for p in (FUZZ / d).iterdir()
                if p.is_file() and p.suffix != ".md")


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    return CProtocol(build_protocol_lib(tmp_path_factory.mktemp("fuzzlib")))


def spec_payload_check(type_: int, payload: bytes, n_leds: int = N_LEDS) -> int:
    """PROTOCOL.md's payload layouts, as the oracle for lp_payload_check."""
    n = len(payload)
    if type_ in (P.HELLO, P.BRIGHTNESS):
        ok = n == 1
    elif type_ == P.PING:
        ok = n <= P.MAX_PING
    elif type_ in (P.POWER_CAP, P.STREAM):
        ok = n == 2
    elif type_ == P.STATUS_REQ:
        ok = n == 0
    elif type_ == P.LEDS:
        if n < 3 or (n - 3) % 3:
            return -P.E_BAD_PAYLOAD
        flags, start = struct.unpack_from("<BH", payload)
        ok = start + (n - 3) // 3 <= n_leds and not flags & ~(P.LEDS_SHOW | P.LEDS_PRELIMITED)
    else:
        return -P.E_UNKNOWN_TYPE
    return 0 if ok else -P.E_BAD_PAYLOAD


def test_there_are_inputs_to_replay():
    assert len(INPUTS) >= 10


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_replay_c_and_python_agree(c, path):
    data = path.read_bytes()
    c_items = c.stream(data)
    py_items = [(x.type, x.seq, x.payload) if isinstance(x, P.Frame) else -x.code
                for x in P.FrameReader().feed(data)]
    assert c_items == py_items
    for item in c_items:
        if isinstance(item, tuple):
            type_, _seq, payload = item
            assert c.payload_check(type_, payload, N_LEDS) == spec_payload_check(type_, payload)
    if 0 not in data:  # the whole input as one encoded frame
        code, frame = c.parse(data)
        try:
            f = P.decode_frame(data)
            assert (code, frame) == (0, (f.type, f.seq, f.payload))
        except P.ProtocolError as exc:
            assert code == -exc.code


def test_the_seeds_cover_every_host_frame_type(c):
    seen = {item[0] for p in INPUTS for item in c.stream(p.read_bytes()) if isinstance(item, tuple)}
    assert {P.HELLO, P.PING, P.LEDS, P.BRIGHTNESS, P.POWER_CAP, P.STREAM, P.STATUS_REQ} <= seen


@pytest.mark.slow
def test_bounded_fuzz_run_finds_nothing(tmp_path_factory):
    if shutil.which("clang") is None:
        pytest.skip("clang not installed (needed for libFuzzer; scripts/system-deps.sh)")
    build = tmp_path_factory.getbasetemp() / "fuzz-build"
    r = subprocess.run([str(FUZZ / "run.sh"), "3"], env={"BUILD": str(build), "PATH": _path()},
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no crash in 3 s" in r.stdout
    runs = int(next(x for x in r.stdout.splitlines() if x.startswith("stat::number_of_executed_units"))
               .split(":")[-1])
    assert runs > 1000  # it really fuzzed


def _path() -> str:
    import os
    return os.environ.get("PATH", "/usr/bin:/bin")


def test_run_sh_refuses_a_bad_duration():
    r = subprocess.run([str(FUZZ / "run.sh"), "ten"], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr
