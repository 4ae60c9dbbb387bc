"""The channel layout: the one place a hardware profile becomes the model frame.

A body's frame is the channels of its sensing parts, in a fixed order: first the default
piece's classic parts when the profile has them (the touch pads ``pad0..padN-1``, then
``distance``, then ``light``: the default piece's 14 channels, encoding and order, so its
shipped model and data keep their bytes), then every other sensing part in the profile's
order, each with the channels it declares (:class:`~lanthorn.hardware.channels.Channel`:
name, unit, range, encoding, rate). A profile with an IMU, a PIR and a knob gets a frame of
exactly those channels; one with only a light sensor gets ``light``.

The sampler (:mod:`.sampling`), the model binding (:mod:`.inference`: a model binds by
channel *name*), the console's ``record``, the simulator's data writer, the studio's plots,
``status`` and ``selftest`` all read this layout and nothing else.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lanthorn.device.piece import frames as fr
from lanthorn.hardware.channels import Channel


@dataclass(frozen=True)
class SensorBlock:
    """One generic sensing part's channels in the frame: ``start`` is its first index."""

    role: str
    start: int
    channels: tuple[Channel, ...]

    @property
    def rate_hz(self) -> float:
        """How often the part is read: its fastest channel, at most the sample rate."""
        return min(max(c.rate_hz for c in self.channels), fr.SAMPLE_HZ)


@dataclass(frozen=True)
class ChannelLayout:
    """Named channels of a body's frame (see the module docstring).

    ``pad_start``/``n_pads``: where the touch pads sit (``n_pads`` 0: no touch part);
    ``distance_at``/``light_at``: the index of those channels, or None; ``blocks``: the
    generic sensing parts."""

    names: tuple[str, ...]
    units: dict[str, str] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    n_pads: int = 0
    pad_start: int = 0
    distance_at: int | None = None
    light_at: int | None = None
    blocks: tuple[SensorBlock, ...] = ()

    @property
    def n(self) -> int:
        return len(self.names)

    @property
    def is_default(self) -> bool:
        """The default piece's 14 channels in their order (the classic encoding path)."""
        return self.names == fr.CHANNELS

    @property
    def pads(self) -> tuple[str, ...]:
        return self.names[self.pad_start:self.pad_start + self.n_pads]

    def roles(self) -> tuple[str, ...]:
        """The sensing parts that feed this frame, by their profile names."""
        classic = [r for r, on in (("touch", self.n_pads), ("distance", self.distance_at is not None),
                                   ("light", self.light_at is not None)) if on]
        return tuple(classic) + tuple(b.role for b in self.blocks)

    def missing(self, channels) -> list[str]:
        """Which of ``channels`` this body does not have."""
        return [c for c in channels if c not in self.names]

    def describe(self) -> dict:
        """For ``status``/``selftest``/``model_info``: names, units and ranges."""
        return {"channels": list(self.names), "parts": list(self.roles()),
                "units": dict(self.units), "ranges": {k: list(v) for k, v in self.ranges.items()}}


def _classic(n_pads: int, distance: bool, light: bool):
    names, units, ranges = [], {}, {}
    for name in [f"pad{i}" for i in range(n_pads)] + ["distance"] * distance + ["light"] * light:
        names.append(name)
        units[name] = fr.DEFAULT_UNITS.get(name, fr.DEFAULT_UNITS["pad0"])
        ranges[name] = fr.DEFAULT_RANGES.get(name, fr.DEFAULT_RANGES["pad0"])
    return names, units, ranges


def build_layout(n_pads: int, distance: bool, light: bool,
                 sensors: Sequence[tuple[str, tuple[Channel, ...]]] = ()) -> ChannelLayout:
    """A layout from what a body has: pads, the ranger, the light sensor, then generic
    sensing parts as ``(role, channels)``. Two channels of one name are refused."""
    names, units, ranges = _classic(n_pads, distance, light)
    blocks = []
    for role, channels in sensors:
        blocks.append(SensorBlock(role, len(names), tuple(channels)))
        for c in channels:
            names.append(c.name)
            units[c.name] = f"{c.unit}: {c.lo:g}..{c.hi:g}, {c.encoding}"
            ranges[c.name] = c.encoded_range
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"channel name(s) {', '.join(twice)} appear twice in the body; give the "
                         f"parts' channels distinct names (a 'prefix' or 'names' option)")
    return ChannelLayout(tuple(names), units, ranges, n_pads=n_pads, pad_start=0,
                         distance_at=n_pads if distance else None,
                         light_at=n_pads + distance if light else None, blocks=tuple(blocks))


#: The default piece: 12 pads, distance, light (frames.CHANNELS).
DEFAULT_LAYOUT = build_layout(fr.N_PADS, True, True)


def profile_sensors(profile) -> list[tuple[str, tuple[Channel, ...]]]:
    """The generic sensing parts of a profile and the channels each declares."""
    from lanthorn.hardware.profile import part_channels
    out = []
    for role, spec in profile.parts.items():
        channels = part_channels(spec)
        if channels:
            out.append((role, channels))
    return out


def layout_for_profile(profile) -> ChannelLayout:
    """The frame of the body a profile describes (raises ProfileError on clashing names)."""
    from lanthorn.hardware.profile import ProfileError
    touch = profile.parts.get("touch")
    n_pads = int(touch.get("pads", fr.N_PADS)) if touch is not None else 0
    try:
        return build_layout(n_pads, "distance" in profile.parts, "light" in profile.parts,
                            profile_sensors(profile))
    except ValueError as exc:
        raise ProfileError(f"{profile.source}: {exc}") from None


def layout_for_body(body) -> ChannelLayout:
    """The layout of an opened body: from its profile when it carries one, else the
    default piece's (a body assembled by hand, as tests do, is the default piece)."""
    profile = getattr(body, "profile", None)
    if profile is None:
        return DEFAULT_LAYOUT
    return layout_for_profile(profile)
