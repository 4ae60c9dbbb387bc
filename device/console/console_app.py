"""The contract between the serial console and the running piece.

The console server (:mod:`lanthorn.device.console.server`) runs on its own thread and never touches
the loop's internals: everything it asks of the piece goes through this protocol. The
running piece (:class:`lanthorn.device.piece.piece.Piece`) implements it; the console tests use a
small fake (``tests/console_fakes.py``) that implements it too, and a test checks both
against this declaration, so the contract is code, not prose.

Thread safety is the implementer's duty: every method may be called from the console thread
while the loop runs. Parameter changes go through ``params`` (a thread-safe
:class:`~lanthorn.device.piece.params.ParamStore`; the loop applies them on its next frame);
presets, recordings and the push's incoming folder live in ``storage``
(:class:`~lanthorn.device.storage.storage.DataDir`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover - names for type checkers only
    import numpy as np

    from lanthorn.device.piece.params import ParamStore
    from lanthorn.device.storage.storage import DataDir


@runtime_checkable
class ConsoleApp(Protocol):
    """What the console may ask of the running piece."""

    params: "ParamStore"
    storage: "DataDir"

    def status(self) -> dict:
        """Frame rate, timings, parts' health, model, mood, uptime and messages (``status``)."""

    def model_info(self) -> dict:
        """The running model's card: name, sha256, labels, input spec, backend, source."""

    def install_model(self, path: str) -> dict:
        """Verify and load the bundle at ``path`` once, make it current (the old one kept as
        previous) and swap it in on the next frame; returns :meth:`model_info`. A bundle that
        does not verify or load raises a UserError and the running model stays."""

    def rollback_model(self, slot: str = "model") -> dict:
        """Go back to the previous bundle of ``slot`` ("model" or "voice"), else the shipped
        one; returns :meth:`model_info`. Raises a UserError when there is nothing to go to."""

    def param_note(self, name: str, value) -> "str | None":
        """What the piece really does with ``value`` when the object limits it (the hardware
        profile's LED budget wins over a larger ``power_cap_ma``), said after ``get``/``set``;
        None when the value is used as given."""

    def latest(self) -> dict:
        """The newest frame's values, class probabilities and mood (``watch``)."""

    def frames_since(self, t: float) -> "tuple[list[np.ndarray], float]":
        """Model frames made after loop time ``t`` and the time of the last one (``record``)."""
