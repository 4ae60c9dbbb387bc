"""Campaign 3, power cuts: SIGKILL at random instants while the device saves its settings,
saves a preset, receives a push and swaps a model in; then a boot on what is left.

Two levels. The *storage* trials run the device's own storage code (``DataDir``, the push
receiver, the install swap) in a worker process that is killed at a random instant, then
boot the data directory as the piece does (sweep, settings, model with its checks): many
trials in little time. The *piece* trials kill a real ``lanthorn run --sim --serial`` in
the middle of the same operations sent over its console, restart it and talk to it.

A boot passes when: the settings parse and hold the value of the last save that finished
or the one being written (never empty, never corrupt), every preset parses, the model
loads from current or previous (never the fall-back after an install finished), and no
temporary file survives the boot's sweep.
"""
from __future__ import annotations

import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from lanthorn.device.storage.storage import SHIPPED_MODEL, DataDir

WORKER = r'''
import hashlib, json, sys
from pathlib import Path
from lanthorn.device.storage.storage import DataDir
from lanthorn.device.console.push_wire import PushReceiver, encode_frame
root, op, n0 = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
dd = DataDir(root)
bundles = [Path(p).read_bytes() for p in sys.argv[4:6]]
print("go", flush=True)
n = n0
while True:
    n += 1
    if op == "save":
        dd.update_settings("params", {"brightness": n % 101, "counter": n})
    elif op == "preset":
        dd.save_preset(f"p{n % 3}", {"counter": n, "pad": "x" * 4000})
    elif op in ("push", "swap"):
        data = bundles[n % 2]
        if op == "push":
            sha = hashlib.sha256(data).hexdigest()
            rx = PushReceiver(dd.incoming_dir, len(data), sha, 1024)
            for seq in range(rx.expected, rx.n_chunks):
                rx.feed(encode_frame(seq, data[seq * 1024:(seq + 1) * 1024]))
            path = rx.finish()
        else:
            path = root / "src.lanthorn"
            path.write_bytes(data)
        dd.install_model(path)
        if path.exists() and op == "push":
            path.unlink()
    sys.stdout.write(f"done {n}\n")  # one write(2): a SIGKILL cannot split the line
    sys.stdout.flush()
'''

OPS = ("save", "preset", "push", "swap")


def _temp_files(root: Path) -> list[Path]:
    found = []
    for d in (root, root / "models", root / "presets", root / "models" / "incoming"):
        if d.is_dir():
            found += list(d.glob(".*.tmp")) + list(d.glob(".staged.lanthorn"))
            if d.name == "incoming":
                found += list(d.glob("*.lanthorn"))
    return found


def boot_check(root: Path, last_done: dict) -> list[str]:
    """Boot ``root`` as the piece does and return what is wrong (empty: a good boot)."""
    from lanthorn.device.piece.inference import refuse_unfit
    problems = []
    dd = DataDir(root)
    left = _temp_files(root)
    if left:
        problems.append(f"temporary files survived the boot sweep: {[p.name for p in left]}")
    settings, msgs = dd.load_settings()
    if msgs:
        problems.append(f"settings corrupt: {msgs}")
    done = last_done.get("save")
    if done is not None:
        counter = (settings.get("params") or {}).get("counter")
        if counter not in (done, done + 1):
            problems.append(f"settings hold counter {counter}, expected {done} or {done + 1}")
    for name in dd.list_presets():
        try:
            dd.load_preset(name)
        except Exception as exc:
            problems.append(f"preset {name} corrupt: {exc}")
    model, source, msgs = dd.load_model(check=refuse_unfit)
    installed = last_done.get("push") is not None or last_done.get("swap") is not None
    if model is None or (installed and source not in ("current", "previous")):
        problems.append(f"model from {source}: {msgs}")
    return problems


def storage_trials(work: Path, n: int, seed: int, max_delay: float = 0.25) -> dict:
    rng = random.Random(seed)
    root = work / "cut-data"
    if root.exists():
        shutil.rmtree(root)
    good_a = SHIPPED_MODEL
    from lanthorn.host.torture import bundles
    good_b = work / "b.lanthorn"
    good_b.write_bytes(bundles.renamed(SHIPPED_MODEL.read_bytes(), "temperament-b"))
    counters = {op: 0 for op in OPS}
    last_done: dict[str, int | None] = {op: None for op in OPS}
    kills = {op: 0 for op in OPS}
    failures, swept = [], 0
    mid_write = 0
    t0 = time.monotonic()
    for i in range(n):
        op = OPS[i % len(OPS)]
        p = subprocess.Popen([sys.executable, "-c", WORKER, str(root), op, str(counters[op]),
                              str(good_a), str(good_b)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        if p.stdout.readline().strip() != "go":
            failures.append(f"trial {i}: worker did not start: {p.stderr.read()[-500:]}")
            p.kill()
            p.wait()
            continue
        time.sleep(rng.uniform(0.0, max_delay))
        p.send_signal(signal.SIGKILL)
        out, err = p.communicate()
        kills[op] += 1
        # whole lines only: under PYTHONUNBUFFERED a kill could land between print's pieces
        done = [int(m[1]) for m in re.finditer(r"^done (\d+)\n", out, re.M)]
        if done:  # the next worker goes on from the last write that finished
            last_done[op] = counters[op] = done[-1]
        if "Traceback" in err:
            failures.append(f"trial {i} ({op}): the worker failed before the kill: {err[-800:]}")
        left = _temp_files(root)
        if left:
            mid_write += 1
            swept += len(left)
        problems = boot_check(root, last_done)
        for pr in problems:
            failures.append(f"trial {i} ({op}): {pr}")
    return {"kills": sum(kills.values()), "kills_by_operation": kills,
            "killed_mid_write": mid_write, "temp_files_swept_at_boot": swept,
            "unbootable": sum(1 for f in failures if "model from" in f),
            "corrupt_settings": sum(1 for f in failures if "settings" in f),
            "seconds": round(time.monotonic() - t0, 1), "failures": failures}


SYSCALLS = ("rename", "fsync", "openat", "write", "close")


def syscall_trials(work: Path, n: int, seed: int) -> dict:
    """Power cuts placed exactly on a syscall: strace kills the worker (SIGKILL) at the N-th
    ``rename``/``fsync``/``openat``/``write``/``close`` it makes, the boundaries where a
    write is half done. Counting starts at process start, so a kill at an ``openat`` or a
    ``close`` may land in the interpreter's start-up (counted apart: it is a power cut too,
    just not one inside a save). Needs strace; without it the trials are reported not run."""
    if shutil.which("strace") is None:
        return {"kills": 0, "not_run": "strace is not installed", "failures": []}
    rng = random.Random(seed)
    root = work / "syscall-data"
    if root.exists():
        shutil.rmtree(root)
    from lanthorn.host.torture import bundles
    good_b = work / "b.lanthorn"
    good_b.write_bytes(bundles.renamed(SHIPPED_MODEL.read_bytes(), "temperament-b"))
    counters = {op: 0 for op in OPS}
    last_done: dict[str, int | None] = {op: None for op in OPS}
    by_call: dict[str, int] = {}
    in_op = 0
    failures = []
    t0 = time.monotonic()
    for i in range(n):
        op = OPS[i % len(OPS)]
        call = SYSCALLS[(i // len(OPS)) % len(SYSCALLS)]
        when = rng.randint(1, 12) if call in ("rename", "fsync") else rng.randint(1, 1500)
        p = subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={call}",
                            "-e", f"inject={call}:signal=KILL:when={when}",
                            sys.executable, "-c", WORKER, str(root), op, str(counters[op]),
                            str(SHIPPED_MODEL), str(good_b)],
                           capture_output=True, text=True, timeout=120)
        lines = p.stdout.splitlines()
        # each "done" (even one cut mid-print by a kill at its write) is one finished
        # operation; the worker numbers them on from counters[op]
        finished = sum(1 for line in lines if line.startswith("do"))
        if "go" in lines:
            in_op += 1
            by_call[call] = by_call.get(call, 0) + 1
        if finished:
            last_done[op] = counters[op] = counters[op] + finished
        if "Traceback" in p.stderr:
            failures.append(f"syscall trial {i} ({op} at {call} #{when}): {p.stderr[-600:]}")
        for pr in boot_check(root, last_done):
            failures.append(f"syscall trial {i} ({op} at {call} #{when}): {pr}")
    return {"kills": n, "killed_inside_an_operation": in_op, "by_syscall": by_call,
            "seconds": round(time.monotonic() - t0, 1), "failures": failures}


def piece_trials(work: Path, n: int, seed: int) -> dict:
    """Kill a real piece mid-operation ``n`` times; every restart must boot and answer."""
    from lanthorn.host.torture.piece import Piece
    rng = random.Random(seed)
    root = work / "piece-cut-data"
    piece = Piece(root, log_path=work / "piece-cuts.log")
    good = SHIPPED_MODEL.read_bytes()
    from lanthorn.host.torture import bundles
    other = bundles.renamed(good, "temperament-b")
    boots, failures, kills = [], [], {op: 0 for op in OPS}
    t0 = time.monotonic()
    try:
        piece.start()
        for i in range(n):
            op = OPS[i % len(OPS)]
            # start the operation, then cut the power at a random instant inside it
            if op == "save":
                piece.write(f"set brightness {i % 100}\nsave\n".encode())
            elif op == "preset":
                piece.write(f"preset save cut{i % 3}\n".encode())
            kill_at = time.monotonic() + rng.uniform(0.0, 0.3 if op in ("save", "preset") else 0.8)
            if op in ("push", "swap"):
                _push_until(piece, other if i % 2 else good, kill_at)
            time.sleep(max(0.0, kill_at - time.monotonic()))
            piece.kill()
            kills[op] += 1
            time.sleep(0.05)
            piece.drain()
            try:
                t = time.monotonic()
                piece.start()
                boots.append(time.monotonic() - t)
                st = piece.status()
                if st.get("model") is None:
                    failures.append(f"kill {i} ({op}): restarted without a model: {st.get('messages')}")
                if st.get("storage") != "ok":
                    failures.append(f"kill {i} ({op}): storage trouble: {st.get('storage')}")
                bad = [m for m in st.get("messages", []) if "unreadable" in m or "failed" in m]
                if bad:
                    failures.append(f"kill {i} ({op}): {bad}")
            except Exception as exc:
                failures.append(f"kill {i} ({op}): did not boot: {exc}")
                piece.kill()
        left = _temp_files(root)
        if left:
            failures.append(f"temporary files after the last boot: {[p.name for p in left]}")
    finally:
        piece.close()
    return {"kills": sum(kills.values()), "kills_by_operation": kills, "restarts": len(boots),
            "boot_to_answer_s_max": round(max(boots), 2) if boots else None,
            "seconds": round(time.monotonic() - t0, 1), "failures": failures}


def _push_until(piece, data: bytes, deadline: float) -> None:
    """Start a push and send its frames until ``deadline`` (acks are not waited for: the
    power goes off at the deadline whatever state the push or the swap is in)."""
    import hashlib

    from lanthorn.device.console import push_wire as pp
    sha = hashlib.sha256(data).hexdigest()
    try:
        obj = piece.call(f"push begin {len(data)} {sha} 1024", timeout=10)
    except TimeoutError:
        return
    if not obj.get("ok"):
        return
    start = int(obj["data"]["offset"]) // 1024
    for seq in range(start, -(-len(data) // 1024)):
        if time.monotonic() >= deadline:
            return
        piece.write(pp.encode_frame(seq, data[seq * 1024:(seq + 1) * 1024]))
