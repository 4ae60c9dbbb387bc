"""The bowl's profile drafts: every part table parses, the sim and real ones agree, and the
simulated parts of the sim one read plausible values from a scene."""
from __future__ import annotations

import tomllib

import pytest

from lanthorn.hardware import channel_parts as CP
from lanthorn.hardware import profile as P
from lanthorn.hardware.sim.motion import Scene


def profile_file(name):
    """The shipped profile, or its draft (hardware/profiles/drafts/) on a branch where the
    profile logic does not yet ship bodies with freely named parts."""
    shipped = P.PROFILE_DIR / f"{name}.toml"
    return shipped if shipped.exists() else P.PROFILE_DIR / "drafts" / f"{name}.toml"


def parts_of(name):
    data = tomllib.loads(profile_file(name).read_text())
    return data, {role: P._parse_part(name, role, table, 1) for role, table in data["parts"].items()}


def test_the_bowl_drafts_parse_and_declare_the_channels_the_piece_reads():
    data, parts = parts_of("bowl")
    sim_data, sim_parts = parts_of("bowl-sim")
    assert data["parts"] == sim_data["parts"] and sim_data["backend"] == "sim"
    assert {k: v for k, v in data.items() if k not in ("name", "description", "board", "backend")} \
        == {k: v for k, v in sim_data.items() if k not in ("name", "description", "board", "backend")}
    names = [c.name for role, s in parts.items() if CP.is_channel_part(s.type)
             for c in CP.channels_for(s)]
    assert names == ["ax", "ay", "az", "gx", "gy", "gz", "presence", "knob", "button"]
    assert set(data["required"]) <= set(parts)


def test_the_bowl_drafts_pins_fit_their_boards():
    from lanthorn.hardware.board import BOARDS
    data, parts = parts_of("bowl")
    pins = [s.pin for s in parts.values() if CP.is_channel_part(s.type) and "pin" in s.options]
    pins.append(data["pins"]["status_led"])
    assert len(set(pins)) == len(pins) and set(pins) <= BOARDS["pi5"].gpio_pins
    assert not {2, 3, 10} & set(pins)  # I2C and the ring's MOSI


def test_the_sim_bowl_feels_a_lift_and_a_visitor():
    t = [0.0]
    scene = Scene(now=lambda: t[0], seed=1)
    _, parts = parts_of("bowl-sim")
    sim = {r: CP.open_sim(s, scene) for r, s in parts.items() if CP.is_channel_part(s.type)}
    scene.approach(at=0.5)
    scene.lift(0.2, duration=0.6, at=1.0)
    scene.turn_knob(0.8, at=1.0)
    t[0] = 1.1
    assert sim["imu"].read()[2] > 1.1 and sim["presence"].read() == (1.0,)
    t[0] = 2.0
    assert sim["knob"].read()[0] == pytest.approx(0.8 * 3.3, abs=0.01)
    assert sim["button"].read() == (0.0,)


def test_the_wiring_readme_has_a_row_per_part_type_and_the_bowls_pins():
    readme = (P.PROFILE_DIR.parent / "README.md").read_text()
    section = readme.split("## Sensing parts for any body", 1)[1].split("\n## ", 1)[0]
    for type_name in CP.TYPES:
        assert f"| `{type_name}` |" in section, type_name
    from lanthorn.hardware.board import BOARDS
    wiring = readme.split("## Wiring: the bowl", 1)[1].split("\n## ", 1)[0]
    data, parts = parts_of("bowl")
    b = BOARDS["pi5"]
    for role in ("presence", "button"):
        pin = parts[role].pin
        assert f"GPIO{pin}, pin {b.physical_pin(pin)} |" in wiring, role
    for role in ("imu", "knob", "display"):
        assert f"{parts[role].address:#04x}" in wiring, role
