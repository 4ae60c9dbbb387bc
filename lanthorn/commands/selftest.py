"""lanthorn selftest: check every part of the object and print a table.

Run it after wiring (or on the simulator with ``--sim``): each part in the profile is
opened and exercised by :mod:`lanthorn.hardware.selftest`. The exit code is 0 when every
required part works, 1 when a required part fails (its row says what to check), 2 for a
profile or usage mistake.
"""
from __future__ import annotations

from lanthorn.commands._options import add_profile
from lanthorn.hardware.profile import choose_profile
from lanthorn.hardware.selftest import check_body, failed_parts, format_table


def add_arguments(parser) -> None:
    add_profile(parser, "the shipped profile of the detected board")
    parser.add_argument("--sim", action="store_true",
                        help="test the simulated body instead of real hardware")
    parser.add_argument("--seed", type=int, default=0, help="simulator seed (with --sim)")


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
