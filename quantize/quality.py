"""Quality gates: the plain-words checks that stop a useless model before it reaches the piece.

A model can pass every step and still be worthless: trained with classes that have no
examples, judged on a test split that lacks a class, no better than guessing, or broken by
int8 quantization (a calibration method that clipped too much). ``train``, ``quantize`` and
``push`` each run the gates that concern them; a failed gate is one line saying what is
wrong and what to do, and the command exits non-zero unless ``--force``. The figures travel
in the model card (``quality``), so ``push`` and ``inspect`` show them before installing.

numpy + stdlib only: ``push`` reads the card on a laptop without torch.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from lanthorn.errors import UserError

#: A model must beat chance (the held-out majority share, or 1/K) by this share of the
#: distance to perfect to count as having learnt anything.
CHANCE_MARGIN = 0.10
#: int8 may lose at most this many accuracy points against float.
INT8_DROP_POINTS = 2.0


class QualityError(UserError):
    """A quality gate failed (the message names it and says what to do; --force overrides)."""


@dataclass
class Gate:
    name: str
    ok: bool
    message: str

    def to_json(self) -> dict:
        return asdict(self)


def _names(labels, idx) -> str:
    return ", ".join(repr(labels[i]) for i in idx)


def class_gates(labels, train_y: np.ndarray, held_y: np.ndarray | None,
                held_name: str = "test") -> list[Gate]:
    """Every class has training examples; the held-out split has every trained class."""
    k = len(labels)
    n_train = np.bincount(np.asarray(train_y, np.int64), minlength=k)[:k]
    empty = [i for i in range(k) if n_train[i] == 0]
    gates = [Gate("classes", not empty,
                  f"labels {_names(labels, empty)} have no training examples: record or import "
                  f"some, or drop them from the dataset" if len(empty) > 1 else
                  f"label {_names(labels, empty)} has no training examples: record or import "
                  f"some, or drop it from the dataset" if empty else
                  f"all {k} labels have training examples")]
    if held_y is not None:
        n_held = np.bincount(np.asarray(held_y, np.int64), minlength=k)[:k]
        missing = [i for i in range(k) if n_train[i] and not n_held[i]]
        gates.append(Gate("held_out_classes", not missing,
                          f"the held-out {held_name} split has no {_names(labels, missing)}: its "
                          f"accuracy says nothing about them; add sessions of them (new "
                          f"sessions are dealt to every side)" if missing else
                          f"the held-out {held_name} split has every trained label"))
    return gates


#: A class may lose at most this many recall points against the model it replaces ...
RECALL_DROP_POINTS = 15.0
#: ... and never fall below this recall (a gesture the piece no longer recognises).
RECALL_FLOOR = 0.5


def recall_gates(old: dict[str, float], new: dict[str, float], where: str,
                 max_drop: float = RECALL_DROP_POINTS, floor: float = RECALL_FLOOR) -> list[Gate]:
    """One gate: no class the replaced model recognised (``old``: {label: recall}, from
    its card) falls by more than ``max_drop`` points or below ``floor`` in ``new`` (the
    new model's recall, measured on ``where``). Each fallen class is named with both
    figures, so an artist sees which gesture a new one pushed out."""
    fallen = []
    for lab, was in old.items():
        now = new.get(lab)
        if now is None:
            continue
        if 100 * (was - now) > max_drop or (now < floor <= was):
            fallen.append(f"{lab!r} {100 * was:.0f}% -> {100 * now:.0f}%")
    compared = [lab for lab in old if lab in new]
    if not compared:
        return []
    return [Gate("recall", not fallen,
                 (f"{'a gesture' if len(fallen) == 1 else 'gestures'} the replaced model "
                  f"recognised fell (recall on {where}): {', '.join(fallen)} (limit: "
                  f"{max_drop:g} points lost, {100 * floor:.0f}% at least); mix the old data "
                  f"back in, or record more takes of {'it' if len(fallen) == 1 else 'them'}")
                 if fallen else
                 f"every one of the {len(compared)} gestures the replaced model knew keeps its "
                 f"recall within {max_drop:g} points (on {where})")]


def chance_level(held_y: np.ndarray, n_classes: int) -> float:
    """What guessing scores: the majority class's share of the held-out windows, or 1/K."""
    if held_y is None or not len(held_y):
        return 1.0 / max(n_classes, 1)
    share = np.bincount(np.asarray(held_y, np.int64), minlength=n_classes).max() / len(held_y)
    return float(max(share, 1.0 / max(n_classes, 1)))


def accuracy_gate(acc: float | None, held_y: np.ndarray | None, n_classes: int,
                  what: str = "held-out accuracy") -> Gate:
    """The model beats chance by :data:`CHANCE_MARGIN` of the way to 100 %."""
    if acc is None:
        return Gate("chance", True, "no labelled held-out data: accuracy not measured")
    chance = chance_level(held_y, n_classes)
    need = chance + CHANCE_MARGIN * (1.0 - chance)
    ok = acc >= need
    return Gate("chance", ok, (f"{what} {100 * acc:.1f}% is near chance ({100 * chance:.1f}% by "
                               f"always guessing the commonest class; needs {100 * need:.1f}%): "
                               f"the model has not learnt; more or cleaner data, or longer "
                               f"training (--epochs)") if not ok else
                f"{what} {100 * acc:.1f}% against chance {100 * chance:.1f}%")


def int8_gate(float_acc: float | None, int8_acc: float | None, calibration: str) -> Gate:
    """int8 keeps float's accuracy within :data:`INT8_DROP_POINTS`."""
    if float_acc is None or int8_acc is None:
        return Gate("int8_drop", True, "no labelled held-out data: int8 drop not measured")
    drop = 100.0 * (float_acc - int8_acc)
    ok = drop <= INT8_DROP_POINTS
    other = "minmax" if calibration != "minmax" else "percentile or entropy"
    return Gate("int8_drop", ok, (f"int8 loses {drop:.2f} points against float with "
                                  f"--calibration {calibration} (limit {INT8_DROP_POINTS:g}): try "
                                  f"--calibration {other}") if not ok else
                f"int8 {100 * int8_acc:.2f}% vs float {100 * float_acc:.2f}% "
                f"({-drop:+.2f} points, calibration {calibration})")


def failures(gates) -> list[dict]:
    return [g if isinstance(g, dict) else g.to_json() for g in gates
            if not (g["ok"] if isinstance(g, dict) else g.ok)]


def enforce(gates, force: bool, log=print, what: str = "") -> bool:
    """Raise QualityError (one line: every failure) unless ``force``; with ``force`` print
    each failure as a loud warning. Returns True when all passed."""
    bad = failures(gates)
    if not bad:
        return True
    text = "; ".join(g["message"] for g in bad)
    if not force:
        raise QualityError(f"{what}{text} (--force to go ahead anyway)")
    for g in bad:
        log(f"WARNING (--force): {g['message']}")
    return False


def card_lines(card: dict) -> list[str]:
    """The quality figures of a model card, as ``push`` shows them before installing."""
    q = (card or {}).get("quality") or {}
    out = []
    tr = q.get("training") or {}
    if tr:
        out.append(f"trained on {tr.get('train_sessions', '?')} sessions; held-out "
                   f"{tr.get('held_out', 'test')} accuracy {_pct(tr.get('accuracy'))} "
                   f"(chance {_pct(tr.get('chance'))})")
    if card.get("accuracy_float") is not None:
        out.append(f"int8 accuracy {_pct(card.get('accuracy_int8'))} vs float "
                   f"{_pct(card.get('accuracy_float'))} on {card.get('held_out', 'held-out')} "
                   f"sessions, calibration {card.get('calibration', '?')}")
    own = {g.get("name") for g in q.get("gates", [])}
    # train's gates quantize does not check again (the recall of the gestures it replaced)
    for g in q.get("gates", []) + [g for g in tr.get("gates") or [] if g.get("name") not in own]:
        out.append(("ok    " if g.get("ok") else "FAILED ") + str(g.get("message")))
    if q.get("forced"):
        out.append("this model was made with --force despite failed quality gates")
    return out


def _pct(x) -> str:
    return "?" if x is None else f"{100 * float(x):.1f}%"
