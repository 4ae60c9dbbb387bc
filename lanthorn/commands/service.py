"""lanthorn install-service: write the systemd unit that runs the piece from power-up.

The unit starts ``lanthorn run`` as soon as the local filesystems are up (no network
wanted: the piece has none), restarts it when it fails, and restarts it when it hangs:
``Type=notify`` with ``WatchdogSec=`` -- the loop itself sends READY and then WATCHDOG every
couple of seconds, so a wedged I2C bus or a stuck loop is noticed and restarted. The
sandbox takes the network away for good (``PrivateNetwork=yes``,
``RestrictAddressFamilies=AF_UNIX``, ``IPAddressDeny=any``) and leaves the process only its
data directory to write. See device/SERVICE.md for the read-only root, the serial console
on each board and turning off Wi-Fi and Bluetooth.
"""
from __future__ import annotations

import getpass
import os
import shlex
import sys
from pathlib import Path

from lanthorn.errors import UserError

UNIT_PATH = Path("/etc/systemd/system/lanthorn.service")
SYSTEM_DATA_DIR = Path("/var/lib/lanthorn")
HARDWARE_GROUPS = ("gpio", "i2c", "spi", "dialout", "video")  # joined when they exist
WATCHDOG_S = 10  # the loop feeds every min(2 s, WATCHDOG_S / 2)


def add_arguments(parser) -> None:
    parser.add_argument("--user", help="account the piece runs as (default: the one running "
                                       "this, or $SUDO_USER under sudo)")
    parser.add_argument("--data-dir", metavar="DIR", default=str(SYSTEM_DATA_DIR),
                        help=f"writable data directory (default {SYSTEM_DATA_DIR}, created by systemd)")
    parser.add_argument("--profile", metavar="FILE",
                        help="hardware profile (default: the detected board's, chosen at start)")
    parser.add_argument("--serial", metavar="PORT",
                        help="serve the console on this port, e.g. /dev/ttyGS0 (USB gadget), "
                             "/dev/ttyAMA0 or /dev/ttyTHS0")
    parser.add_argument("--out", metavar="FILE", default=str(UNIT_PATH),
                        help=f"where to write the unit (default {UNIT_PATH}; '-' prints it)")


def _user(name: str | None) -> str:
    import pwd
    name = name or os.environ.get("SUDO_USER") or getpass.getuser()
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise UserError(f"there is no user {name!r} on this machine; create one with "
                        f"'sudo useradd --system --create-home {name}' or pass --user") from None
    return name


def _groups() -> list[str]:
    import grp
    have = []
    for g in HARDWARE_GROUPS:
        try:
            grp.getgrnam(g)
            have.append(g)
        except KeyError:
            pass
    return have


def _needs_root(profile) -> str | None:
    """Why the profile's parts need root, or None (rpi_ws281x drives PWM through /dev/mem)."""
    leds = profile.parts.get("leds") if profile is not None else None
    if leds is not None and leds.type == "ws2812" and leds.get("driver") == "pwm":
        return "the PWM WS2812 driver (rpi_ws281x) maps /dev/mem, which needs root"
    return None


def unit_text(user: str, data_dir: Path, profile_arg: str | None, serial: str | None,
              groups: list[str], root_reason: str | None = None,
              python: str = sys.executable) -> str:
    """The unit file's text (pure: the tests check it without touching /etc)."""
    cmd = [python, "-m", "lanthorn", "run", "--data-dir", str(data_dir)]
    if profile_arg:
        cmd += ["--profile", profile_arg]
    if serial:
        cmd += ["--serial", serial]
    exec_start = " ".join(shlex.quote(c) for c in cmd)
    if data_dir == SYSTEM_DATA_DIR:
        data_lines = ["StateDirectory=lanthorn", "StateDirectoryMode=0750"]
    else:
        data_lines = [f"ReadWritePaths={data_dir}"]
    if root_reason:
        who = [f"# runs as root: {root_reason}; every capability but raw I/O is dropped",
               "User=root", "CapabilityBoundingSet=CAP_SYS_RAWIO",
               "AmbientCapabilities=CAP_SYS_RAWIO"]
    else:
        who = [f"User={user}", "CapabilityBoundingSet=", "AmbientCapabilities="]
        if groups:
            who.append(f"SupplementaryGroups={' '.join(groups)}")
    lines = [
        "# Written by `lanthorn install-service`; see device/SERVICE.md.",
        "[Unit]",
        "Description=lanthorn networkless art object",
        f"Documentation=file://{Path(__file__).resolve().parent / 'SERVICE.md'}",
        "After=local-fs.target",
        "# restart on failure, but not for ever in a tight loop: 10 starts per 5 minutes",
        "StartLimitIntervalSec=300",
        "StartLimitBurst=10",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={exec_start}",
        "Restart=on-failure",
        "RestartSec=2",
        "# the loop sends WATCHDOG=1 every 2 s; a hung loop is killed and restarted",
        f"WatchdogSec={WATCHDOG_S}",
        "TimeoutStartSec=60",
        "TimeoutStopSec=10",
        "KillSignal=SIGTERM",
        "Environment=PYTHONUNBUFFERED=1",
        f"Environment=LANTHORN_DATA_DIR={data_dir}",
        *who,
        *data_lines,
        "",
        "# no network, ever: no interfaces but loopback, no IP sockets, no IP traffic",
        "PrivateNetwork=yes",
        "RestrictAddressFamilies=AF_UNIX",
        "IPAddressDeny=any",
        "",
        "# hardening: read-only system, nothing writable but the data directory",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictNamespaces=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "SystemCallArchitectures=native",
        "UMask=0027",
        "# not PrivateDevices: the piece needs /dev/i2c-*, /dev/spidev*, /dev/gpiochip* and its tty",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


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
    text = unit_text(_user(args.user), data_dir, profile_arg, args.serial, _groups(),
                     _needs_root(profile))
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    if not out.parent.is_dir():
        raise UserError(f"cannot write {out}: the folder {out.parent} does not exist")
    from lanthorn.device.atomic import atomic_write_text
    try:
        atomic_write_text(out, text)
    except PermissionError:
        raise UserError(f"no permission to write {out}: run with sudo, or pass --out FILE "
                        f"(or --out - to print the unit)") from None
    print(f"wrote {out}")
    name = out.name
    if out.parent == UNIT_PATH.parent:
        print(f"start it now and at every power-up:\n  sudo systemctl daemon-reload\n"
              f"  sudo systemctl enable --now {name}\n"
              f"watch it: journalctl -u {name} -f      status: systemctl status {name}")
    else:
        print(f"install it with: sudo cp {out} /etc/systemd/system/ && sudo systemctl daemon-reload "
              f"&& sudo systemctl enable --now {name}")
    if data_dir != SYSTEM_DATA_DIR:
        print(f"the data directory {data_dir} must exist and be writable by the service's user")
    return 0
