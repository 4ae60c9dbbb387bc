"""lanthorn run: start the piece (the device loop, and the serial console with --serial).

This is what systemd starts on the object (see ``lanthorn install-service``). It opens the
body from the hardware profile (or the simulator with ``--sim``), loads the model from the
data directory (current, else previous, else the shipped default; with none the built-in
idle animation runs and the console says why), and runs until SIGTERM/SIGINT or
``--seconds``; on the way out the LEDs go dark. Part failures never stop it: they are
reported on the console and in the log (stderr, which systemd keeps in the journal).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

from lanthorn.commands._options import add_baud, add_data_dir, add_profile, add_sim_gestures
from lanthorn.errors import UserError


def add_arguments(parser) -> None:
    add_profile(parser)
    parser.add_argument("--sim", action="store_true",
                        help="run on the simulated body (a scripted visitor) instead of hardware")
    parser.add_argument("--seed", type=int, default=0, help="simulator seed (with --sim)")
    add_sim_gestures(parser, "with --sim: ", then=" with 'lanthorn record'")
    parser.add_argument("--serial", metavar="PORT",
                        help="serve the console on this serial port (e.g. /dev/ttyGS0, "
                             "/dev/ttyAMA0); 'auto': on a new pseudo-terminal cable whose other "
                             "end's path is printed, for 'lanthorn console', 'record', 'push'")
    add_baud(parser, "console baud rate")
    add_data_dir(parser)
    parser.add_argument("--seconds", type=float, metavar="S",
                        help="stop after S seconds (default: run until stopped)")
    parser.add_argument("--quiet", action="store_true", help="log only problems")


def _log(text: str) -> None:
    print(f"lanthorn: {text}", file=sys.stderr, flush=True)


def open_piece(args):
    """(profile, body, storage) from the command line; UserError for anything a person fixes."""
    from lanthorn.device.storage.data_dir import data_dir_or_default
    from lanthorn.device.storage.storage import DataDir, shipped_model_for
    from lanthorn.hardware.body import open_body
    from lanthorn.hardware.profile import choose_profile
    if args.seconds is not None and not (args.seconds > 0):
        raise UserError(f"--seconds must be a positive number of seconds, got {args.seconds:g}")
    if args.baud <= 0:
        raise UserError(f"--baud must be positive, got {args.baud}")
    profile = choose_profile(args.profile, args.sim)
    storage = DataDir(data_dir_or_default(args.data_dir), shipped_model=shipped_model_for(profile))
    sim = args.sim or profile.is_sim
    gestures = getattr(args, "sim_gestures", None)
    if gestures and not sim:
        raise UserError("--sim-gestures needs --sim (a real visitor does what they like)")
    gestures = gestures or None
    body = (open_body(profile, sim=True, seed=args.seed, realtime=True, gestures=gestures)
            if sim else open_body(profile))
    return profile, body, storage


def _say_fit(piece, log) -> None:
    """At start: a body whose parts cannot feed the model says so, naming the channels."""
    fit = piece.model_fit()
    if fit.startswith("no:"):
        log(f"this body ({', '.join(piece.layout.names) or 'no sensing channels'}) cannot feed "
            f"the model: {fit[4:]}")


def _console(args, loop, log):
    """(the console server or None, the pseudo-terminal cable of ``--serial auto`` or
    None). ``auto``: a null-modem cable of two pseudo-terminals (what the tests and the
    studio use); the piece serves on one end, and the other end's path is printed on stdout
    for the host tools -- a simulated object needs no hardware and no socat."""
    if not args.serial:
        return None, None
    from lanthorn.device.console.server import ConsoleServer
    cable = None
    if args.serial == "auto":
        from lanthorn.host.pty_link import PtyLink
        cable = PtyLink()
        args.serial = cable.device
        print(f"console: connect to {cable.host} (e.g. lanthorn console {cable.host})",
              flush=True)
    elif not os.path.exists(args.serial):
        log(f"console port {args.serial} does not exist yet; waiting for it to appear")
    return ConsoleServer(args.serial, loop, baud=args.baud, log=log).start(), cable


def run(args) -> int:
    from lanthorn.device.piece.piece import Piece
    from lanthorn.device.service.sdnotify import Notifier

    profile, body, storage = open_piece(args)
    notifier = Notifier()
    log = _log
    for role, why in body.open_errors.items():
        log(f"{role} did not open: {why} (running without it, retrying)")
    loop = Piece(body, storage=storage, log=log, watchdog=notifier.watchdog)
    _say_fit(loop, log)
    loop.WATCHDOG_S = notifier.feed_interval(Piece.WATCHDOG_S)
    loop.profile = profile  # the console's 'version' names the body (for an archive)
    console, cable = _console(args, loop, log)

    stop_reason = []

    def on_signal(signum, frame):
        stop_reason.append(signal.Signals(signum).name)
        loop.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    info = loop.model_info()
    where = "simulator" if (args.sim or profile.is_sim) else profile.board_info.title
    if not args.quiet:
        model = (f"model {info['name']} ({info['source']}, {info['backend']})" if info["name"]
                 else "no model (idle animation)")
        voice = info.get("voice") or {}
        model += (f", voice {voice['name']} ({voice['source']})" if voice.get("name")
                  else ", no voice (phrase banks)")
        log(f"running profile {profile.name!r} on the {where}, {model}, data in {storage.root}"
            + (f", console on {args.serial}" if args.serial else ""))
    t0 = time.monotonic()
    try:
        loop.run(seconds=args.seconds)
    finally:
        notifier.stopping()
        if console is not None:
            console.stop()
        if cable is not None:
            cable.close()
        body.close()
        notifier.close()
    st = loop.status()
    if not args.quiet:
        log(f"stopped{' on ' + stop_reason[0] if stop_reason else ''} after "
            f"{time.monotonic() - t0:.1f} s: {loop.frames_shown} frames at {st['fps']} fps, "
            f"frame time p99 {st['frame_ms_p99']} ms ({st['frame_cpu_ms_p99']} ms CPU), "
            f"inference {st['infer_ms']} ms, "
            + (f"touch-to-light p50 {st['touch_to_light_ms_p50']} ms"
               if st['touch_to_light_ms_p50'] is not None else "no touches to time")
            + (f", phrase generation p50 {st['phrase_ms_p50']} ms p99 {st['phrase_ms_p99']} ms"
               if st.get("phrase_ms_p50") is not None else "")
            + "; LEDs off")
    return 0
