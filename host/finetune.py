"""Teaching an existing model one more gesture in seconds: fine-tuning from its checkpoint.

``lanthorn train --from CURRENT.pt`` (or, without ``--from``, automatically from the shipped
model when the dataset is the default piece's channels with its labels and more) keeps the
feature layers the model already learnt and gives it a new class head: the old classes'
rows copied, the new ones fresh. A few epochs at a low learning rate then teach the new
gesture; ``--full`` trains from scratch instead.

A model that learns a new gesture can forget an old one. Two things stop that happening
silently: the old model's training data is mixed in (a sample of its training windows, the
default when its dataset is at hand), and every old class's recall is measured on the old
model's *own* held-out sessions, where its card's figure was measured, so the two compare
like with like; :func:`lanthorn.quantize.quality.recall_gates` fails a class that falls.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lanthorn.device.storage.dataset import DataError, Windows
from lanthorn.errors import UserError
from lanthorn.quantize.dataspec import DataSpec

#: The shipped model's checkpoint and the dataset it was trained on (a clone has both).
ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CHECKPOINT = ROOT / "device" / "models" / "temperament.pt"
SHIPPED_DATA = ROOT / "data" / "temperament"
#: Fine-tuning's fit settings, when not given: few epochs at a low rate (the features are
#: learnt already; the one-cycle schedule runs its course: stopping while the rate is still
#: high stopped at a worse model, measured: wave recall 67 % with patience 5, 100 % with 8).
FINETUNE_FIT = {"epochs": 8, "patience": 8, "lr": 2e-3}
#: The first conv blocks keep the base's weights unchanged (nothing to compute backwards
#: through them: most of an epoch's time is there, at the full frame rate).
#: Measured on the default piece + a wave (3 takes, AMD EPYC, loaded): 2 frozen, 15 s and
#: every old class within 3 points; 1 frozen, as fast under load but stroke_ccw -10 points.
FROZEN_BLOCKS = 2
#: At most this many of the old model's training windows are mixed in (evenly over them).
REPLAY_WINDOWS = 2500


@dataclass
class Base:
    """The model being taught more: its checkpoint, its data spec, and its old figures."""

    path: Path
    net: object
    spec: DataSpec
    #: {label: recall} on its own held-out sessions, as its checkpoint recorded
    recall: dict[str, float]
    #: the dataset it was trained on (replay and the old classes' recall), if at hand
    old_data: Path | None = None
    old: object = field(default=None, repr=False)   # its Splits, once loaded
    #: start from its weights (False: ``--full``, from scratch, but still judged against it)
    warm: bool = True

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.spec.labels)


def checkpoint_of(path) -> Path:
    """``--from`` may name the float ONNX or its checkpoint: the checkpoint is what holds
    the weights to warm-start from."""
    p = Path(path)
    ckpt = p.with_suffix(".pt") if p.suffix == ".onnx" else p
    if not ckpt.is_file():
        raise UserError(f"--from {path}: no training checkpoint {ckpt} (train writes it beside "
                        f"the ONNX); fine-tuning needs it")
    return ckpt


def load_base(path, old_data=None) -> Base:
    from lanthorn.quantize import net as nets
    from lanthorn.quantize.metrics import per_class_recall

    ckpt_path = checkpoint_of(path)
    net, ckpt = nets.load_checkpoint(ckpt_path)
    spec = DataSpec.from_json(ckpt["data"])
    train = ckpt.get("train") or {}
    recall = {}
    if train.get("confusion"):
        r = per_class_recall(np.asarray(train["confusion"]))
        recall = {lab: float(v) for lab, v in zip(spec.labels, r, strict=True) if not np.isnan(v)}
    if old_data is None and ckpt_path.resolve() == SHIPPED_CHECKPOINT.resolve() \
            and (SHIPPED_DATA / "manifest.json").is_file():
        old_data = SHIPPED_DATA
    return Base(ckpt_path, net, spec, recall, Path(old_data) if old_data else None)


def extends(base_labels, base_channels, base_rate, ds) -> bool:
    """Whether dataset ``ds`` is the base model's layout with its labels and more after
    them (``data add-label`` appends), so its head can grow."""
    return (tuple(ds.channels) == tuple(base_channels) and abs(ds.rate_hz - base_rate) < 1e-6
            and len(ds.labels) > len(base_labels)
            and tuple(ds.labels[:len(base_labels)]) == tuple(base_labels))


def choose_base(from_path, full: bool, ds, old_data=None, say=print) -> Base | None:
    """The model the new one replaces: ``--from``, else the shipped one when the dataset
    extends its labels (None when nothing fits). It is fine-tuned from, unless ``full``
    (then the new model starts from scratch, but is still judged against it and gets its
    old data)."""
    if from_path is None:
        if not SHIPPED_CHECKPOINT.is_file():
            return None
        base = load_base(SHIPPED_CHECKPOINT, old_data)
        if not extends(base.labels, base.spec.channels, base.spec.rate_hz, ds):
            return None
        what = f"the shipped model ({', '.join(ds.labels[len(base.labels):])} added)"
    else:
        base = load_base(from_path, old_data)
        if not (tuple(ds.labels) == base.labels or extends(base.labels, base.spec.channels,
                                                           base.spec.rate_hz, ds)):
            raise DataError(f"--from {from_path} knows {', '.join(base.labels)} on "
                            f"{len(base.spec.channels)} channels; the dataset's labels must "
                            f"be those, in that order, and maybe more after them (its "
                            f"labels: {', '.join(ds.labels)}); or leave --from out")
        what = str(base.path)
    base.warm = not full
    say(f"training from scratch to replace {what}" if full else
        f"fine-tuning {what}; --full trains from scratch")
    return base


def spec_for(base: Base, pad_short: bool) -> DataSpec:
    """The base model's way of reading data (window, hop, labelling, input scales), with
    the labels left to the dataset."""
    spec = DataSpec.from_json(base.spec.to_json())
    spec.labels, spec.channels, spec.pad_short = (), (), pad_short
    return spec


def warm_model(base: Base, cfg, seed: int):
    """A model of ``cfg`` (the base's architecture, more classes) with the base's feature
    layers and its head's rows for the old classes; the new rows start small and seeded."""
    import torch

    from lanthorn.quantize import net as nets

    old = base.net
    if list(cfg.widths) != list(old.cfg.widths) or cfg.in_channels != old.cfg.in_channels:
        raise UserError(f"--widths differ from {base.path}'s: fine-tuning keeps its layers "
                        f"(drop --widths, or --full)")
    cfg = nets.ArchConfig.from_json({**old.cfg.to_json(), "n_classes": cfg.n_classes})
    torch.manual_seed(seed)
    net = nets.TemperamentNet(cfg)
    state = {k: v for k, v in old.state_dict().items() if not k.startswith("head.")}
    net.load_state_dict(state, strict=False)
    k = old.cfg.n_classes
    with torch.no_grad():
        net.head.weight[:k] = old.head.weight
        net.head.bias[:k] = old.head.bias
        net.head.weight[k:] *= 0.1
        net.head.bias[k:] = old.head.bias.mean()
    for block in net.blocks[:FROZEN_BLOCKS]:
        for p in block.parameters():
            p.requires_grad_(False)
        block["bn"].momentum = 0.0    # its running statistics stay the base's too
    return net, cfg


def old_splits(base: Base):
    """The base model's dataset cut as it was when the base was trained (its spec and
    pins), or None when it is not at hand."""
    from lanthorn.quantize.dataspec import prepare

    if base.old is None and base.old_data is not None:
        base.old = prepare(base.old_data, DataSpec.from_json(base.spec.to_json()))
    return base.old


def replay(train: Windows, base: Base, say=print) -> Windows:
    """``train`` with a sample of the base model's own training windows mixed in (their
    labels are a prefix of the new ones, so the indices hold)."""
    old = old_splits(base)
    if old is None or not len(old.train):
        return train
    n = min(REPLAY_WINDOWS, len(old.train))
    pick = np.unique(np.linspace(0, len(old.train) - 1, n).round().astype(np.int64))
    o = old.train.subset(pick)
    say(f"mixed in {len(o)} windows of the old model's training data ({base.old_data}; "
        f"--no-old-data to leave them out)")
    return join(train, o)


def join(a: Windows, b: Windows) -> Windows:
    return Windows(np.concatenate([a.X, b.X]), np.concatenate([a.y, b.y]),
                   np.concatenate([a.sessions, b.sessions]),
                   np.concatenate([a.weights, b.weights]), a.labels)


def replay_validation(val: Windows, base: Base) -> Windows:
    """``val`` with the base model's validation windows (at most :data:`REPLAY_WINDOWS`)
    added, so the epoch kept is the one best at the old gestures too, not at the new
    gesture's few held-out windows alone."""
    old = old_splits(base)
    if old is None or not len(old.val):
        return val
    n = min(REPLAY_WINDOWS, len(old.val))
    return join(val, old.val.subset(np.unique(np.linspace(0, len(old.val) - 1, n)
                                              .round().astype(np.int64))))


def evaluate_old(model, base: Base | None):
    """(labels, predictions) of the new model on the base model's held-out test sessions
    (where the base's own figures were measured), or None without a base or its data."""
    from lanthorn.quantize import net as nets

    old = old_splits(base) if base is not None else None
    if old is None:
        return None
    held = old.test if len(old.test) else old.val
    return held.y, nets.predict(model, held.X).argmax(1)


def recall_check(base: Base | None, old_eval, cm, labels, log=print) -> list:
    """The recall gate of a model that replaces ``base`` (none without one): each old
    class on the old model's held-out sessions (``old_eval``: :func:`evaluate_old`) when
    at hand, else on this dataset's (``cm``)."""
    from lanthorn.quantize import quality
    from lanthorn.quantize.metrics import confusion, per_class_recall

    if base is None or not base.recall:
        return []
    where = f"the old model's held-out sessions ({base.old_data})"
    if old_eval is None:
        where = "this dataset's held-out sessions"
    else:
        cm = confusion(old_eval[0], old_eval[1], len(labels))
    r = per_class_recall(cm)
    new = {lab: float(r[i]) for i, lab in enumerate(labels)
           if lab in base.recall and not np.isnan(r[i])}
    log("recall of the old gestures, before -> after (on " + where + "): " + ", ".join(
        f"{lab} {100 * base.recall[lab]:.0f}->{100 * new[lab]:.0f}%" for lab in new))
    return quality.recall_gates(base.recall, new, where)
