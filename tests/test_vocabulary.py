"""The default piece's vocabulary (lanthorn.vocabulary) agrees with the artefacts it names.

The module is the one spelling of labels, moods, roles, ...; these tests check it against
what ships (the model bundle, the profiles, the body's parts, the parameter table), not
against a second copy of itself.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib

from lanthorn import vocabulary as V
from lanthorn.device.engine.bundle import read_bundle
from lanthorn.device.models import default_bundle
from lanthorn.hardware.interfaces import Body, DistanceSensor, LightSensor, TouchSensor
from lanthorn.hardware.profile import PROFILE_DIR, shipped_profiles


def test_the_shipped_model_answers_in_the_vocabularys_labels():
    assert tuple(read_bundle(default_bundle()).labels) == V.LABELS


def test_every_shipped_profile_names_its_parts_by_role_or_as_channel_parts():
    """Read as raw TOML (the profile parser itself checks against ROLES, so it cannot judge):
    the default piece's profiles have exactly the five roles; any other part (the bowl's
    imu, presence, knob, button) is a channel part under a name of its own, never a role."""
    from lanthorn.hardware.channel_parts import is_channel_part
    names = shipped_profiles()
    assert names
    for name in names:
        with open(PROFILE_DIR / f"{name}.toml", "rb") as f:
            parts = tomllib.load(f).get("parts", {})
        extra = set(parts) - set(V.ROLES)
        assert all(is_channel_part(parts[r]["type"]) for r in extra), name
        assert not any(is_channel_part(parts[r]["type"]) for r in set(parts) & set(V.ROLES)), name
        if not extra:
            assert set(parts) == set(V.ROLES), name


def test_roles_are_the_bodys_parts_and_sensors_are_read():
    fields = [f.name for f in dataclasses.fields(Body) if f.name not in ("open_errors", "profile")]
    assert tuple(fields) == V.ROLES
    kinds = {f.name: f.type for f in dataclasses.fields(Body)}
    readers = {"touch": TouchSensor, "distance": DistanceSensor, "light": LightSensor}
    assert set(readers) == set(V.SENSOR_ROLES)
    for role, cls in readers.items():
        assert cls.__name__ in str(kinds[role])
    assert set(V.SENSOR_ROLES).isdisjoint(V.OUTPUT_ROLES)


def test_the_default_temperament_maps_the_vocabularys_gestures_to_its_moods():
    from lanthorn.device.piece.behaviour import DEFAULT_GESTURE_MOODS
    assert set(DEFAULT_GESTURE_MOODS) <= set(V.LABELS)
    named = {m for weights in DEFAULT_GESTURE_MOODS.values() for m in weights}
    assert named and named <= set(V.MOODS)


def test_vocabulary_is_a_stdlib_leaf():
    """The lowest layer (hardware) imports it: it must pull in nothing of lanthorn or numpy."""
    code = ("import sys, lanthorn.vocabulary; "
            "print(sorted(m for m in sys.modules if m.startswith('lanthorn') or m == 'numpy'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['lanthorn', 'lanthorn.vocabulary']"
