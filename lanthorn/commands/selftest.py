"""lanthorn selftest: check every part of the object and print a table.

Run it after wiring (or on the simulator with ``--sim``): each part in the profile is
opened and exercised by :mod:`lanthorn.hardware.selftest`. The exit code is 0 when every
required part works, 1 when a required part fails (its row says what to check), 2 for a
profile or usage mistake.
"""
from __future__ import annotations

from lanthorn.commands._options import add_data_dir, add_profile
from lanthorn.hardware.profile import choose_profile
from lanthorn.hardware.selftest import Row, check_body, failed_parts, format_table


def add_arguments(parser) -> None:
    add_profile(parser, "the shipped profile of the detected board")
    parser.add_argument("--sim", action="store_true",
                        help="test the simulated body instead of real hardware")
    parser.add_argument("--seed", type=int, default=0, help="simulator seed (with --sim)")
    add_data_dir(parser, "the object's models, to check the one it would run fits this body")


def run(args) -> int:
    profile = choose_profile(args.profile, args.sim)
    sim = args.sim or profile.is_sim
    from lanthorn.hardware.body import open_body
    if sim:
        body = open_body(profile, sim=True, seed=args.seed, realtime=False)
    else:
        body = open_body(profile)
    try:
        rows = check_body(profile, body, sim=sim)
        rows.append(model_row(profile, args.data_dir))
    finally:
        body.close()
    where = "simulator" if sim else profile.board_info.title
    print(f"lanthorn selftest: profile {profile.name!r} ({profile.source}) on the {where}")
    print(format_table(rows))
    failed = failed_parts(rows)
    if failed:
        print(f"FAILED: required part(s) {', '.join(failed)} not working; see the rows above "
              f"and hardware/README.md")
        return 1
    others = failed_parts(rows, required_only=False)
    print("all required parts OK" + (f" (optional part(s) failing: {', '.join(others)})" if others else ""))
    return 0


def model_row(profile, data_dir) -> Row:
    """Whether the body's parts can feed the model it would run: the data directory's
    current model (``--data-dir``, when it holds one), else the piece's shipped one. Not a
    required row: the parts work either way, but a model that does not fit means the idle
    animation, and the maker must hear it here, naming the channels."""
    from pathlib import Path

    from lanthorn.device.engine.runtime import load
    from lanthorn.device.piece.channel_layout import layout_for_profile
    from lanthorn.device.piece.inference import ModelMismatch, model_name, refuse_unfit
    from lanthorn.device.storage.storage import shipped_model_for
    layout = layout_for_profile(profile)
    path, source = shipped_model_for(profile), "shipped"
    if data_dir:
        current = Path(data_dir) / "models" / "current.lanthorn"
        if current.exists():
            path, source = current, "current"
    if not path.exists():
        return Row("model", source, "WARN", f"no model at {path}: the idle animation runs", False)
    try:
        model = load(str(path))
        refuse_unfit(model, layout.names)
    except ModelMismatch as exc:
        return Row("model", f"{source} {path.name}", "FAIL", f"this body cannot feed it: {exc}", False)
    except Exception as exc:  # a selftest reports, it does not crash
        return Row("model", f"{source} {path.name}", "FAIL", f"does not load: {exc}", False)
    spec = model.input_spec
    return Row("model", f"{source} {path.name}", "OK",
               f"{model_name(model)} reads {', '.join(spec.channels) or 'every channel'} at "
               f"{spec.rate_hz or 25:g} Hz: this body feeds it", False)
