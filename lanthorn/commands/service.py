"""lanthorn install-service: write the systemd unit that runs the piece from power-up.

The unit itself (notify + watchdog, restart, no network, a read-only system) is
:mod:`lanthorn.device.service.service`; this checks the options, writes the file and says how to
start it. See device/SERVICE.md.
"""
from __future__ import annotations

import sys
from pathlib import Path

from lanthorn.device.service import service
from lanthorn.errors import UserError


def add_arguments(parser) -> None:
    parser.add_argument("--user", help="account the piece runs as (default: the one running "
                                       "this, or $SUDO_USER under sudo)")
    parser.add_argument("--data-dir", metavar="DIR", default=str(service.SYSTEM_DATA_DIR),
                        help=f"writable data directory (default {service.SYSTEM_DATA_DIR}, "
                             "created by systemd)")
    parser.add_argument("--profile", metavar="FILE",
                        help="hardware profile (default: the detected board's, chosen at start)")
    parser.add_argument("--serial", metavar="PORT",
                        help="serve the console on this port, e.g. /dev/ttyGS0 (USB gadget), "
                             "/dev/ttyAMA0 or /dev/ttyTHS0")
    parser.add_argument("--out", metavar="FILE", default=str(service.UNIT_PATH),
                        help=f"where to write the unit (default {service.UNIT_PATH}; '-' prints it)")


def run(args) -> int:
    profile = None
    if args.profile:
        from lanthorn.hardware.profile import load_profile
        profile = load_profile(args.profile)
        if profile.is_sim:
            raise UserError(f"{args.profile} is a simulator profile; a service runs real hardware "
                            f"(try 'lanthorn run --sim' instead)")
    data_dir = Path(args.data_dir)
    if not data_dir.is_absolute():
        raise UserError(f"--data-dir must be an absolute path (systemd needs one), got {data_dir}")
    profile_arg = str(Path(args.profile).resolve()) if args.profile and Path(args.profile).exists() \
        else args.profile
    text = service.unit_text(service.check_user(args.user), data_dir, profile_arg, args.serial,
                             service.hardware_groups(), service.needs_root(profile))
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    if not out.parent.is_dir():
        raise UserError(f"cannot write {out}: the folder {out.parent} does not exist")
    from lanthorn.device.storage.atomic import atomic_write_text
    try:
        atomic_write_text(out, text)
    except PermissionError:
        raise UserError(f"no permission to write {out}: run with sudo, or pass --out FILE "
                        f"(or --out - to print the unit)") from None
    print(f"wrote {out}")
    name = out.name
    if out.parent == service.UNIT_PATH.parent:
        print(f"start it now and at every power-up:\n  sudo systemctl daemon-reload\n"
              f"  sudo systemctl enable --now {name}\n"
              f"watch it: journalctl -u {name} -f      status: systemctl status {name}")
    else:
        print(f"install it with: sudo cp {out} /etc/systemd/system/ && sudo systemctl daemon-reload "
              f"&& sudo systemctl enable --now {name}")
    if data_dir != service.SYSTEM_DATA_DIR:
        print(f"the data directory {data_dir} must exist and be writable by the service's user")
    return 0
