"""The systemd unit that runs the piece from power-up (``lanthorn install-service`` writes it).

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
from lanthorn.vocabulary import SYSTEM_DATA_DIR

UNIT_PATH = Path("/etc/systemd/system/lanthorn.service")
HARDWARE_GROUPS = ("gpio", "i2c", "spi", "dialout", "video")  # joined when they exist
WATCHDOG_S = 10  # the loop feeds every min(2 s, WATCHDOG_S / 2)


def check_user(name: str | None) -> str:
    """The account the piece runs as: NAME, else $SUDO_USER under sudo, else whoever runs
    this; a UserError saying how to create it when it does not exist."""
    import pwd
    name = name or os.environ.get("SUDO_USER") or getpass.getuser()
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise UserError(f"there is no user {name!r} on this machine; create one with "
                        f"'sudo useradd --system --create-home {name}' or pass --user") from None
    return name


def hardware_groups() -> list[str]:
    """The hardware groups this machine has (a Jetson has no ``spi`` group, ...)."""
    import grp
    have = []
    for g in HARDWARE_GROUPS:
        try:
            grp.getgrnam(g)
            have.append(g)
        except KeyError:
            pass
    return have


def needs_root(profile) -> str | None:
    """Why the profile's parts need root, or None (rpi_ws281x drives PWM through /dev/mem)."""
    leds = profile.parts.get("leds") if profile is not None else None
    if leds is not None and leds.type == "ws2812" and leds.get("driver") == "pwm":
        return "the PWM WS2812 driver (rpi_ws281x) maps /dev/mem, which needs root"
    return None


def _exec_start(python: str, data_dir: Path, profile_arg: str | None, serial: str | None) -> str:
    cmd = [python, "-m", "lanthorn", "run", "--data-dir", str(data_dir)]
    if profile_arg:
        cmd += ["--profile", profile_arg]
    if serial:
        cmd += ["--serial", serial]
    return " ".join(shlex.quote(c) for c in cmd)


def _identity(user: str, groups: list[str], root_reason: str | None) -> list[str]:
    """Who the service runs as: the user with its hardware groups and no capabilities, or
    root with every capability but raw I/O dropped when a part needs /dev/mem."""
    if root_reason:
        return [f"# runs as root: {root_reason}; every capability but raw I/O is dropped",
                "User=root", "CapabilityBoundingSet=CAP_SYS_RAWIO",
                "AmbientCapabilities=CAP_SYS_RAWIO"]
    who = [f"User={user}", "CapabilityBoundingSet=", "AmbientCapabilities="]
    if groups:
        who.append(f"SupplementaryGroups={' '.join(groups)}")
    return who


#: no network, ever, and a read-only system with nothing writable but the data directory
SANDBOX = [
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
]


def unit_text(user: str, data_dir: Path, profile_arg: str | None, serial: str | None,
              groups: list[str], root_reason: str | None = None,
              python: str = sys.executable) -> str:
    """The unit file's text (pure: the tests check it without touching /etc)."""
    if data_dir == SYSTEM_DATA_DIR:
        data_lines = ["StateDirectory=lanthorn", "StateDirectoryMode=0750"]
    else:
        data_lines = [f"ReadWritePaths={data_dir}"]
    lines = [
        "# Written by `lanthorn install-service`; see device/SERVICE.md.",
        "[Unit]",
        "Description=lanthorn networkless art object",
        f"Documentation=file://{Path(__file__).resolve().parents[1] / 'SERVICE.md'}",
        "After=local-fs.target",
        "# restart on failure, but not for ever in a tight loop: 10 starts per 5 minutes",
        "StartLimitIntervalSec=300",
        "StartLimitBurst=10",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={_exec_start(python, data_dir, profile_arg, serial)}",
        "Restart=on-failure",
        "RestartSec=2",
        "# the loop sends WATCHDOG=1 every 2 s; a hung loop is killed and restarted",
        f"WatchdogSec={WATCHDOG_S}",
        "TimeoutStartSec=60",
        "TimeoutStopSec=10",
        "KillSignal=SIGTERM",
        "Environment=PYTHONUNBUFFERED=1",
        f"Environment=LANTHORN_DATA_DIR={data_dir}",
        *_identity(user, groups, root_reason),
        *data_lines,
        "",
        *SANDBOX,
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"
