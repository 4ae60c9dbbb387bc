"""Run the simulated artwork on the shipped model and report what it did and how fast.

``lanthorn demo`` runs the real device loop on the simulated body while a scripted visitor
performs every gesture, prints the timeline and the frame, inference and touch-to-light
figures, and writes ``OUT/summary.json`` and ``OUT/demo.gif``. The work is
:mod:`lanthorn.host.demo`; this module parses the options and prints.
"""
from __future__ import annotations

from pathlib import Path

from lanthorn.commands._options import add_sim_gestures
from lanthorn.host import demo as d
from lanthorn.vocabulary import DEFAULT_PIECE, PIECES

#: The default length of each piece's demo: one visitor's full tour.
TOUR_S = {"lantern": 20.0, "bowl": 30.0}


def add_arguments(parser) -> None:
    parser.add_argument("--seconds", type=float, default=None,
                        help="seconds of the piece to run (default: one visitor's full tour, 20 "
                             "for the lantern, 30 for the bowl; "
                             "with --window: until the window is closed)")
    parser.add_argument("--out", type=Path, default=Path("out/demo"),
                        help="folder for demo.gif and summary.json (default out/demo)")
    parser.add_argument("--model", type=Path, default=None,
                        help="a .lanthorn bundle to run instead of the shipped default model")
    parser.add_argument("--voice", type=Path, default=None,
                        help="a voice bundle to speak with instead of the shipped default voice")
    parser.add_argument("--no-voice", action="store_true",
                        help="speak from the phrase banks only (no voice model)")
    parser.add_argument("--seed", type=int, default=0, help="the visitor's seed (default 0)")
    parser.add_argument("--piece", default=DEFAULT_PIECE, choices=tuple(PIECES),
                        help=f"which shipped piece (default {DEFAULT_PIECE}; bowl: a bowl with "
                             "an IMU, a PIR, a knob and a button, handled by the visitor)")
    add_sim_gestures(parser, then=": --model wave.lanthorn --set gesture_moods=wave=shy "
                                  "shows it driving the mood")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a parameter for this run, as on the console (repeatable), e.g. "
                             "--set gesture_smoothing=1 --set gesture_hold_s=0 to see the "
                             "flicker without smoothing")
    parser.add_argument("--fps", type=float, default=12.5,
                        help="GIF frames per second (default 12.5)")
    parser.add_argument("--window", action="store_true",
                        help="show the piece live in a window, in real time; touch the pads "
                             "with the mouse (click = tap, drag around the ring = stroke, "
                             "right button = palm)")
    parser.add_argument("--visitor", action="store_true",
                        help="with --window: let the scripted visitor walk up too "
                             "(without --window the visitor always comes)")


def run(args) -> int:
    seconds = args.seconds if args.seconds is not None else (
        None if args.window else TOUR_S.get(args.piece, 20.0))
    d.check_options(seconds, args.fps, args.out)
    demo = d.open_demo(args.model, args.voice, args.no_voice, args.seed, args.window,
                       args.visitor, args.sim_gestures, args.set, args.piece)
    for note in demo.notes:
        print(f"note: {note}")
    how = "live in a window (close it or press Esc to stop)" if demo.window else "simulated"
    name = demo.loop.model_info().get("name") or "no model"
    print(f"lanthorn demo: {'until closed' if seconds is None else f'{seconds:g} s'} of the "
          f"piece, {how} (seed {args.seed}), model {name} ({demo.model_note}, "
          f"{getattr(demo.model, 'backend', '-')} backend), voice "
          f"{getattr(demo.voice, 'name', None) or '-'} ({demo.voice_note})", flush=True)
    recorder, wall, interrupted = d.run_demo(demo, seconds, args.fps)
    if interrupted:
        print("stopped")
    summary = d.build_summary(demo.loop, demo.body, demo.model, demo.model_note, wall)
    summary["voice"]["note"] = demo.voice_note
    demo.body.close()
    print("\n".join(d.report_lines(summary)))
    path = d.write_outputs(summary, recorder, args.out)
    what = f"{summary['gif']} ({summary['gif_frames']} frames) and " if len(recorder) else ""
    print(f"ran {summary['seconds']:g} s of the piece in {wall:.1f} s; wrote {what}{path}")
    return 0
