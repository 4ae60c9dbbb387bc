"""Recording demonstrations over the console: ``record``, ``recordings``, ``recording get``.

Apart from the server because a take is a dataset concern: which labels the device's own
recordings accept, where a take is kept (``dataset/recordings`` in the data dir, in the
dataset format of :mod:`lanthorn.device.storage.dataset`) and how its frames travel (5 significant
digits, as the dataset's CSV keeps them). The server only dispatches the commands and ticks
the running :class:`Recording` between reads; the frames come from the piece's
``frames_since`` (:class:`~lanthorn.device.console.console_app.ConsoleApp`), in the piece's own time
base, so the server passes back only what it was given.
"""
from __future__ import annotations

import math
import re
import time
from typing import TYPE_CHECKING

import numpy as np

from lanthorn.device.console import console_wire as wire
from lanthorn.errors import UserError

if TYPE_CHECKING:  # pragma: no cover - names for type checkers only
    from lanthorn.device.console.server import ConsoleServer

MAX_RECORD_S = 600.0
RECORD_SOURCE = "device"
POLL_S = 0.2        # how often a take asks the piece for new frames
GRACE_S = 2.0       # a take that gets too few frames ends this long after its length
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # as dataset names


def _short(frame) -> list[float]:
    """5 significant digits, as the dataset's CSV keeps them: shorter lines on the wire."""
    return [float(f"{float(x):.5g}") for x in frame]


class Recording:
    """One take in progress: polls the piece's frames, streams them to a json client and,
    when ``seconds`` of frames are in, saves them (if ``folder``) and answers once."""

    name = "record"
    takes_bytes = False

    def __init__(self, label: str, seconds: float, t0: float, rate: float, channels, folder,
                 t_from: float):
        self.label, self.seconds, self.t0, self.rate = label, seconds, t0, rate
        self.channels, self.folder = channels, folder  # folder None: streamed only
        self.t_last, self.next_poll = t_from, t0
        self.rows: list[list[float]] = []

    def tick(self, server: "ConsoleServer") -> bool:
        """One poll; False once the take is over (its answer sent)."""
        now = server.clock()
        if now < self.next_poll:
            return True
        self.next_poll = now + POLL_S
        new, self.t_last = server.app.frames_since(self.t_last)
        want = int(round(self.seconds * self.rate))
        rows = [_short(f) for f in new][:want - len(self.rows)]
        self.rows.extend(rows)
        if rows and server.mode == "json":  # the host client pulls the frames as they come
            # with what the model makes of them right now (live confidence while recording)
            server.send([wire.json_line({"event": "frames", "data": {
                "rows": rows, "now": server.app.latest()}})])
        if len(self.rows) < want and now - self.t0 < self.seconds + GRACE_S:
            return True
        server.send(self._finish(server))
        return False

    def _finish(self, server: "ConsoleServer") -> list[str]:
        from lanthorn.device.storage import dataset
        if not self.rows:
            return wire.err_lines(server.mode, "record", "no frames arrived from the loop; "
                                  "nothing was saved")
        session = f"{self.label}-{time.strftime('%Y%m%d-%H%M%S')}"
        data = {"session": session, "path": None, "frames": len(self.rows), "label": self.label,
                "rate_hz": self.rate, "channels": list(self.channels)}
        where = "(streamed only, not kept on the device)"
        if self.folder is not None:
            try:
                path = dataset.write_recording(self.folder, RECORD_SOURCE, session, self.rows,
                                               self.label, rate_hz=self.rate)
            except OSError as exc:  # the card filled up (or turned read-only) during the take
                server.log(f"console: record: the card refused the take ({exc.strerror or exc})")
                refused = server.app.storage.refused(exc, f"keep the take of {self.label}")
                return wire.err_lines(server.mode, "record", f"{refused}; nothing was saved")
            data["path"] = str(path.relative_to(server.app.storage.root))
            where = f"into {data['path']}"
        return server.ok("record", f"recorded {len(self.rows)} frames of {self.label} {where}",
                         data=data)

    def cancel(self, server: "ConsoleServer") -> None:
        server.send(wire.err_lines(server.mode, "record", "recording cancelled; nothing was saved"))

    def close(self) -> None:
        pass


def _frame_rate(app) -> float:
    """The rate of the piece's model frames: the running model's input rate, else the
    default (what the loop samples at when there is no model)."""
    from lanthorn.device.piece import frames
    rate = (app.model_info().get("input") or {}).get("rate_hz")
    return float(rate or frames.DEFAULT_RATE_HZ)


def _frame_channels(app, default) -> tuple[str, ...]:
    """The names of the piece's frame channels: its body's channel layout (``status``
    says it), else the default piece's."""
    return tuple(app.status().get("channels") or default)


def _parse(args) -> tuple[str, float]:
    label = args[0]
    try:
        seconds = float(args[1])
    except ValueError:
        raise UserError(f"record SECONDS must be a number, got {args[1]}") from None
    if not 0.5 <= seconds <= MAX_RECORD_S:
        raise UserError(f"record SECONDS must be between 0.5 and {MAX_RECORD_S:g}, got {seconds:g}")
    if not _LABEL.match(label):
        raise UserError(f"label {label!r} must be 1-64 letters, digits, '.', '_' or '-'")
    return label, seconds


def cmd_record(server: "ConsoleServer", name, args):
    from lanthorn.device.piece import frames
    label, seconds = _parse(args)
    rate, channels = _frame_rate(server.app), _frame_channels(server.app, frames.CHANNELS)
    folder = server.app.storage.recordings_dir
    # a body that is not the default piece keeps takes under its running model's labels
    labels = (server.app.model_info().get("labels") or None) if channels != frames.CHANNELS \
        else None
    keep, why = device_dataset(folder, rate, channels, label, server.app.storage, labels)
    if not keep and server.mode != "json":
        # typed at a terminal: the take would go nowhere, so refuse before recording
        if why.startswith("the card"):
            raise UserError(why)
        raise UserError(f"{why}; record new gestures with 'lanthorn record PORT {label} "
                        f"SECONDS --data DIR' on a computer")
    # everything buffered so far is before the take
    _, t_from = server.app.frames_since(-math.inf)
    server.stream = Recording(label, seconds, server.clock(), rate, channels,
                              folder if keep else None, t_from)
    # one line, one answer: the start is a notice (an event in json mode); the final
    # OK (or ERR) comes when the take is done
    return [wire.event_line(
        server.mode, "recording", f"NOTE recording {label} for {seconds:g} s; 'stop' cancels",
        data={"label": label, "seconds": seconds, "rate_hz": rate,
              "channels": list(channels), "kept_on_device": keep, "not_kept_because": why})]


def device_dataset(folder, rate, channels, label, storage, labels=None) -> tuple[bool, str]:
    """Whether a take of ``label`` can also be kept in the device's own recordings
    (a dataset with the default label set, or ``labels``), and if not, why (a card that
    refuses writes is named, and noted in ``storage``'s problems)."""
    from lanthorn.device.piece import frames
    from lanthorn.device.storage import dataset
    try:
        dataset.create_dataset(folder, rate, channels, tuple(labels or frames.LABELS))
        header, sources, _ = dataset.read_manifest(folder)
    except dataset.DataError as exc:
        return False, f"the device's recordings cannot take it ({exc})"
    except OSError as exc:  # a full or read-only card: the manifest cannot be written
        return False, str(storage.refused(exc, "start the device's recordings"))
    if label not in header["labels"]:
        return False, (f"label {label!r} is not one of the device's recording labels "
                       f"({', '.join(header['labels'])})")
    if RECORD_SOURCE not in sources:
        try:
            dataset.add_source(folder, dataset.Source(
                RECORD_SOURCE, device="recorded on the object over the serial console",
                notes="consent and author are added when the recordings are pulled to a host",
                rate_hz=rate))
        except OSError as exc:
            return False, str(storage.refused(exc, "start the device's recordings"))
    return True, ""


def _kept(app):
    from lanthorn.device.storage import dataset
    folder = app.storage.recordings_dir
    if not (folder / dataset.MANIFEST).exists():
        return None
    return dataset.load_dataset(folder)


def cmd_recordings(server: "ConsoleServer", name, args):
    ds = _kept(server.app)
    rows = [] if ds is None else [
        {"session": r.session, "source": r.source, "frames": len(r.frames),
         "label": ds.labels[int(np.bincount(r.labels).argmax())]} for r in ds.recordings]
    body = [f"{x['session']}  {x['label']}  {x['frames']} frames" for x in rows]
    return server.ok(name, f"{len(rows)} take{'s' if len(rows) != 1 else ''} kept on the device",
                     body, data={"takes": rows})


def _runs(labels: list[str]) -> list[list]:
    """Per-frame labels as [[label, frames], ...]: short on the wire."""
    runs: list[list] = []
    for lab in labels:
        if runs and runs[-1][0] == lab:
            runs[-1][1] += 1
        else:
            runs.append([lab, 1])
    return runs


def cmd_recording_get(server: "ConsoleServer", name, args):
    ds = _kept(server.app)
    rec = next((r for r in (ds.recordings if ds else []) if r.session == args[0]), None)
    if rec is None:
        raise UserError(f"no take {args[0]!r} kept on the device (see 'recordings')")
    labels = [ds.labels[i] for i in rec.labels]
    rows = [_short(f) for f in rec.frames]
    data = {"session": rec.session, "source": rec.source, "rate_hz": ds.rate_hz,
            "channels": list(ds.channels), "labels": _runs(labels), "frames": len(rows)}
    if server.mode == "json":
        lines = [wire.json_line({"event": "frames", "data": {"rows": rows[i:i + 50]}})
                 for i in range(0, len(rows), 50)]
        return lines + server.ok(name, f"{len(rows)} frames of {rec.session}", data=data)
    body = ["label," + ",".join(ds.channels)] + [
        lab + "," + ",".join(f"{v:g}" for v in row) for lab, row in zip(labels, rows, strict=True)]
    return server.ok(name, f"{len(rows)} frames of {rec.session}", body)


HANDLERS = {"record": cmd_record, "recordings": cmd_recordings,
            "recording get": cmd_recording_get}
