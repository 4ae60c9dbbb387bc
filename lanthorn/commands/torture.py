"""`lanthorn torture`: fault-injection campaigns against a real piece, with a figures table.

Runs ``lanthorn run --sim --serial`` processes over pseudo-terminals (and the device loop on
the simulator's clock for sensor faults and soak) through the campaigns of
:mod:`lanthorn.host.torture`, prints one row of figures per campaign and writes every
figure as JSON. The exit status is 1 when any campaign found a failure. ``--bounded`` runs
the seconds-long versions that the test suite runs.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

from lanthorn.errors import UserError


def add_arguments(parser) -> None:
    from lanthorn.host.torture import CAMPAIGNS
    parser.add_argument("campaigns", nargs="*", metavar="CAMPAIGN",
                        help=f"which campaigns (default all): {', '.join(CAMPAIGNS)}")
    parser.add_argument("--bounded", action="store_true",
                        help="the short versions run by the test suite (seconds each)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument("--out", metavar="DIR", default="torture-results",
                        help="where torture.json goes (default ./torture-results)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the scratch data directories and logs in --out")
    parser.add_argument("--markdown", metavar="FILE",
                        help="write the figures page (device/RELIABILITY.md) from --from files "
                             "instead of running campaigns")
    parser.add_argument("--from", dest="sources", nargs="+", metavar="JSON", default=[],
                        help="torture.json files of earlier runs (with --markdown)")


def run(args) -> int:
    from lanthorn.host import torture
    if args.markdown:
        from lanthorn.host.torture import report
        if not args.sources:
            raise UserError("--markdown needs --from torture.json (the figures of a run)")
        missing = [p for p in args.sources if not Path(p).is_file()]
        if missing:
            raise UserError(f"{missing[0]}: no such file (run 'lanthorn torture' first)")
        Path(args.markdown).write_text(report.markdown(report.merge(args.sources)))
        print(f"wrote {args.markdown}")
        return 0
    unknown = [c for c in args.campaigns if c not in torture.CAMPAIGNS]
    if unknown:
        raise UserError(f"unknown campaign {unknown[0]!r}; campaigns: {', '.join(torture.CAMPAIGNS)}")
    names = args.campaigns or list(torture.CAMPAIGNS)
    budgets = torture.BOUNDED if args.bounded else torture.FULL
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keep = (out / "work") if args.keep else None
    t0 = time.monotonic()
    load0 = os.getloadavg()
    results = torture.run_all(names, budgets, args.seed, keep,
                              progress=lambda m: print(m, file=sys.stderr, flush=True))
    report = {"command": "lanthorn torture " + " ".join(sys.argv[2:]).strip(),
              "bounded": args.bounded, "seed": args.seed, "budgets": {n: budgets[n] for n in names},
              "machine": {"cpu": _cpu(), "cores": os.cpu_count(), "python": platform.python_version(),
                          "loadavg_start": [round(x, 2) for x in load0],
                          "loadavg_end": [round(x, 2) for x in os.getloadavg()]},
              "wall_s": round(time.monotonic() - t0, 1), "results": results}
    path = out / "torture.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    for line in torture.table(results):
        print(line)
    failed = {n: f["failures"] for n, f in results.items() if f.get("failures")}
    for name, fails in failed.items():
        for f in fails[:10]:
            print(f"FAIL {name}: {f}")
    print(f"figures in {path} ({report['wall_s']} s, load average {report['machine']['loadavg_end'][0]})")
    return 1 if failed else 0


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
