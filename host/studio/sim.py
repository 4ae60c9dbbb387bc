"""``lanthorn studio --sim``: the simulated piece as a separate process on a pty cable.

The studio must talk to the simulation exactly as to an object on a USB cable, so the
simulation is the real thing: ``lanthorn run --sim --serial PORT`` (the device loop, the
simulated body with its scripted visitor, the serial console server), started on one end
of a :class:`~lanthorn.host.pty_link.PtyLink`; the studio opens the other end by name like
/dev/ttyACM0. Like systemd's ``Restart=`` on the object, a simulated piece that dies is
started again (the studio then shows the restart and reconnects).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from lanthorn.host.pty_link import PtyLink


class SimPiece:
    def __init__(self, data_dir: str | Path | None = None, log=None, seed: int = 0,
                 profile: str | None = None):
        self._tmp = None if data_dir else tempfile.mkdtemp(prefix="lanthorn-studio-sim-")
        self.data_dir = Path(data_dir or self._tmp)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.seed = seed
        self.profile = profile  # the body simulated (a shipped name or a .toml): its channels
        self.log = log or (lambda msg: None)
        self.cable = PtyLink()
        self.port = self.cable.host  # the studio's end
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._log_file = open(self.data_dir / "sim.log", "ab")

    def start(self) -> "SimPiece":
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="studio-sim", daemon=True)
        self._watcher.start()
        return self

    def _spawn(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lanthorn", "run", "--sim", "--seed", str(self.seed),
             "--serial", self.cable.device, "--data-dir", str(self.data_dir), "--quiet",
             *(["--profile", str(self.profile)] if self.profile else [])],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log_file)
        self.starts += 1

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            if self.proc.poll() is not None:
                self.log(f"the simulated piece stopped (exit {self.proc.returncode}); "
                         f"starting it again (log: {self.data_dir / 'sim.log'})")
                self._spawn()

    def kill(self) -> None:
        """Kill the simulated piece as a power cut would (it is started again)."""
        self.proc.kill()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher:
            self._watcher.join(2.0)
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.cable.close()
        self._log_file.close()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
