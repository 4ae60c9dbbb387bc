"""The "temperament" network and the small fit loop, in PyTorch.

It lives in ``quantize/`` (not ``host/``) because both training (``lanthorn train``) and
structured pruning (which rebuilds narrower layers and fine-tunes them from the training
checkpoint) need it, and the layers only import downwards (host → quantize → device).

The architecture is a 1-D CNN over a channels × time window: a few conv1d + BatchNorm +
ReLU blocks (BatchNorm is folded into the convolution at ONNX export), global average
pooling over time, and one dense layer to the class logits. A final Softmax is appended at
export so the bundle's outputs are probabilities (the engine runs that softmax in float).
Every width is a config field, which is what lets pruning physically shrink a layer.
"""
from __future__ import annotations

import copy
import io
import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from lanthorn.quantize import determinism

determinism.apply()   # before torch's first import: its CPU kernels are chosen then
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from lanthorn.device.piece.frames import N_PADS  # noqa: E402

OPSET = 17


@dataclass
class ArchConfig:
    in_channels: int = 14
    window: int = 50
    n_classes: int = 9
    widths: tuple[int, ...] = (16, 32, 32)
    kernels: tuple[int, ...] = (5, 3, 3)
    strides: tuple[int, ...] = (2, 2, 1)
    dilations: tuple[int, ...] = (1, 1, 2)
    dropout: float = 0.1

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict) -> "ArchConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def time_steps(self) -> list[int]:
        """Output length of each conv block (``same``-style padding, then stride)."""
        t, out = self.window, []
        for k, s, d in zip(self.kernels, self.strides, self.dilations, strict=True):
            pad = d * (k - 1) // 2
            t = (t + 2 * pad - d * (k - 1) - 1) // s + 1
            out.append(t)
        return out

    def macs(self) -> int:
        """Multiply-accumulates of one inference: convs, the global average pool (one add
        per input element) and dense -- counted as the bundle's graph counts them
        (``device.graph.layer_macs``), so ``train`` and ``quantize`` report one figure."""
        total, cin = 0, self.in_channels
        for w, k, t in zip(self.widths, self.kernels, self.time_steps(), strict=True):
            total += w * cin * k * t
            cin = w
        return total + cin * self.time_steps()[-1] + cin * self.n_classes


class TemperamentNet(nn.Module):
    """conv1d blocks → global average pool → dense. ``forward`` returns logits."""

    def __init__(self, cfg: ArchConfig):
        super().__init__()
        self.cfg = cfg
        blocks, cin = [], cfg.in_channels
        for w, k, s, d in zip(cfg.widths, cfg.kernels, cfg.strides, cfg.dilations, strict=True):
            blocks.append(nn.ModuleDict({
                "conv": nn.Conv1d(cin, w, k, stride=s, padding=d * (k - 1) // 2, dilation=d,
                                  bias=False),
                "bn": nn.BatchNorm1d(w)}))
            cin = w
        self.blocks = nn.ModuleList(blocks)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cin, cfg.n_classes)

    def features(self, x):
        for b in self.blocks:
            x = F.relu(b["bn"](b["conv"](x)))
        return F.adaptive_avg_pool1d(x, 1).flatten(1)

    def forward(self, x):
        return self.head(self.dropout(self.features(x)))


class _WithSoftmax(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.softmax(self.net(x), dim=-1)


def export_onnx(net: TemperamentNet, softmax: bool = True) -> bytes:
    """Float ONNX (static shape [1, C, T], opset 17) with BatchNorm folded into the convs."""
    import onnx

    net = copy.deepcopy(net).eval()
    module = _WithSoftmax(net) if softmax else net
    dummy = torch.zeros(1, net.cfg.in_channels, net.cfg.window)
    buf = io.BytesIO()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(module, (dummy,), buf, dynamo=False, opset_version=OPSET,
                          input_names=["window"], output_names=["probs" if softmax else "logits"],
                          do_constant_folding=True)
    model = onnx.load_from_string(buf.getvalue())
    tidy_names(model)
    model.producer_name = "lanthorn"
    model.doc_string = "temperament: 1-D CNN over a sensor window (channels x time)"
    # stable bytes: the exporter records its own version, which is fine, but no timestamps
    return model.SerializeToString()


_SHORT = {"Conv": "conv", "Relu": "relu", "GlobalAveragePool": "pool", "Flatten": "flatten",
          "Gemm": "head", "Softmax": "softmax"}


def tidy_names(model) -> None:
    """Rename the exporter's nodes and tensors ("/net/conv_1/Conv", "onnx::Conv_38") to short
    readable ones ("conv2", "conv2.weight", "conv2_out"). They travel into the QDQ twin and
    the bundle's graph, where ``lanthorn inspect`` shows them to the artist, and every byte
    of a name is a byte of the bundle. Graph inputs and outputs keep their names."""
    import onnx
    g = model.graph
    keep = {v.name for v in g.input} | {v.name for v in g.output}
    by_name = {t.name: t for t in g.initializer}
    # The exporter shares equal constants (two folded biases that happen to be equal, as in
    # an untrained net) and reads them through Identity nodes; every layer gets its own copy
    # instead, so each can be named, quantized (its bias scale is its own) and pruned alone.
    for node in [n for n in g.node if n.op_type == "Identity" and n.input[0] in by_name]:
        t = onnx.TensorProto()
        t.CopyFrom(by_name[node.input[0]])
        t.name = node.output[0]
        g.initializer.append(t)
        by_name[t.name] = t
        g.node.remove(node)
    used = set()
    for node in g.node:
        for i, x in enumerate(node.input):
            if x in by_name and x in used:
                t = onnx.TensorProto()
                t.CopyFrom(by_name[x])
                t.name = f"{x}__{node.name or len(g.initializer)}_{i}"
                g.initializer.append(t)
                by_name[t.name] = t
                node.input[i] = t.name
            used.add(node.input[i])
    for t in [t for t in g.initializer if t.name not in used]:
        g.initializer.remove(t)
    inits = set(by_name)
    rename, seen = {}, {}
    for node in g.node:
        base = _SHORT.get(node.op_type, node.op_type.lower())
        seen[base] = seen.get(base, 0) + 1
        name = f"{base}{seen[base]}" if base in ("conv", "relu") else base
        if base not in ("conv", "relu") and seen[base] > 1:
            name = f"{base}{seen[base]}"
        node.name = name
        for i, o in enumerate(node.output):
            if o not in keep:
                rename[o] = f"{name}_out" if i == 0 else f"{name}_out{i}"
        for i, x in enumerate(node.input):
            if x in inits and x not in rename:
                rename[x] = f"{name}." + ("weight", "bias")[i - 1] if i in (1, 2) else f"{name}.in{i}"
    for node in g.node:
        node.input[:] = [rename.get(x, x) for x in node.input]
        node.output[:] = [rename.get(x, x) for x in node.output]
    for t in g.initializer:
        t.name = rename.get(t.name, t.name)
    for v in g.value_info:
        v.name = rename.get(v.name, v.name)


def set_deterministic(seed: int) -> None:
    """Same seed, same weights on any CPU: the CPU-independent kernels and one thread
    (:func:`lanthorn.quantize.determinism.require`), deterministic algorithms, seeded RNGs."""
    determinism.require(threads=1)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def rotate_ring(x: torch.Tensor, gen: torch.Generator, ring) -> torch.Tensor:
    """Augmentation for a declared ring of channels (the default piece's 12 pads): turn the
    ring by a random number of positions (a gesture means the same wherever on the ring it
    happens, and a clockwise stroke stays clockwise). ``ring``: channel indices in order
    around the ring; other channels are untouched. Only a dataset that declares a ring gets
    this: on an IMU's axes or a vowel's cepstra, "turning" would scramble the data."""
    ring = torch.as_tensor(list(ring), dtype=torch.long)
    n = len(ring)
    if n < 2:
        return x
    shifts = torch.randint(0, n, (x.shape[0],), generator=gen)
    pos = (torch.arange(n)[None, :] - shifts[:, None]) % n                  # [B, n]
    src = ring[pos]                                                        # [B, n]
    out = x.clone()
    out[:, ring] = torch.gather(x, 1, src[:, :, None].expand(-1, -1, x.shape[2]))
    return out


def rotate_pads(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The default piece's ring: channels 0..11 (kept for callers that know they have it)."""
    return rotate_ring(x, gen, range(N_PADS))


def channel_scales(X: np.ndarray) -> tuple[float, ...]:
    """Per channel of training windows [N, C, T], the factor that brings its largest values
    (99.9th percentile of |x|) to 1 (see DataSpec.input_scale): the int8 input has one
    scale for every channel, so each should use that range about equally -- g and deg/s, a
    0..2 touch channel and a near-constant light level alike. A channel that is (almost)
    always zero is not blown up: its peak is floored at a thousandth of the largest one."""
    peak = np.percentile(np.abs(X.transpose(1, 0, 2).reshape(X.shape[1], -1)), 99.9, axis=1)
    floor = max(1e-3 * float(peak.max()), 1e-6)
    return tuple(float(np.float32(1.0 / max(float(p), floor))) for p in peak)


@dataclass
class FitResult:
    best_epoch: int
    epochs_run: int
    best_val_accuracy: float
    history: list[dict] = field(default_factory=list)
    best_val_loss: float = math.inf


def predict(net: nn.Module, X: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Class probabilities [N, K] in eval mode."""
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(X), batch):
            out.append(torch.softmax(net(torch.from_numpy(X[i:i + batch])), -1).numpy())
    return np.concatenate(out) if out else np.zeros((0, net.cfg.n_classes), np.float32)


def _balanced_weights(y: np.ndarray, w: np.ndarray, n_classes: int) -> torch.Tensor:
    """Each window's loss weight: its source weight times its class's balancing factor,
    normalised to mean 1, so a class with few windows (or light sources) still counts as
    much as a common one; a class without windows gets no factor at all."""
    counts = np.bincount(y, weights=w, minlength=n_classes)
    class_w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1e-9) / n_classes, 0)
    sw = w * class_w[y]
    return torch.from_numpy((sw / sw.mean()).astype(np.float32))


def _noise_scale(X: np.ndarray) -> torch.Tensor:
    """[1, C, 1]: each channel's own spread (in its own units: g, deg/s, or 0..1 touch), so
    the augmentation's noise (3 % of it) is as small on every channel, whatever its unit."""
    spread = X.transpose(1, 0, 2).reshape(X.shape[1], -1).std(axis=1) if len(X) else np.ones(X.shape[1])
    return torch.from_numpy((3.0 * spread).astype(np.float32))[None, :, None]


def _augment(xb: torch.Tensor, gen: torch.Generator, ring, noise_scale: torch.Tensor) -> torch.Tensor:
    """A training batch as it could also have been recorded: the ring turned (if one is
    declared), the amplitude jittered by ±5 %, noise added. The draws from ``gen`` come in
    this order, batch after batch, so a seed gives the same run."""
    if ring is not None and len(ring) >= 2:
        xb = rotate_ring(xb, gen, ring)
    xb = xb * (1.0 + 0.1 * (torch.rand(len(xb), 1, 1, generator=gen) - 0.5))
    return xb + 0.01 * torch.randn(xb.shape, generator=gen) * noise_scale


def _batches(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor, gen: torch.Generator,
             batch: int, steps: int, augment):
    """One epoch's shuffled (windows, labels, weights) batches. The shuffle is drawn first and
    each batch's augmentation (``augment``, or None) only when that batch is reached, so the
    draws from ``gen`` interleave with training exactly as a seed expects."""
    perm = torch.randperm(len(X), generator=gen)
    for i in range(steps):
        idx = perm[i * batch:(i + 1) * batch]
        xb = X[idx]
        yield (xb if augment is None else augment(xb)), y[idx], w[idx]


def _train_epoch(net: nn.Module, batches, opt, sched) -> float:
    """One pass of weighted cross-entropy steps; the summed loss (per-window mean × windows)."""
    total = 0.0
    for xb, yb, wb in batches:
        loss = (F.cross_entropy(net(xb), yb, reduction="none") * wb).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        total += float(loss.detach()) * len(xb)
    return total


def _held_out_score(net: nn.Module, Xval: np.ndarray, yval: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) on the validation windows, the early stop's judges;
    (0, 0) without validation windows."""
    if not len(yval):
        return 0.0, 0.0
    pv = predict(net, Xval)
    acc = float((pv.argmax(1) == yval).mean())
    return acc, float(-np.log(np.maximum(pv[np.arange(len(yval)), yval], 1e-12)).mean())


def fit(net: TemperamentNet, X, y, w, Xval, yval, *, epochs: int = 40, lr: float = 3e-3,
        batch: int = 64, patience: int = 8, seed: int = 0, progress: bool = True,
        desc: str = "train", augment: bool = True, ring=None,
        on_epoch: Callable[[dict], None] | None = None) -> FitResult:
    """Weighted cross-entropy with Adam and early stopping on held-out accuracy.

    Keeps the weights of the best held-out epoch. ``w`` are per-window sample weights (the
    artist's source weights) times a class-balancing factor, normalised to mean 1.
    ``ring``: channel indices of a declared ring (rotated as augmentation); None or empty:
    no rotation. Amplitude jitter and noise (relative to each channel's spread) always.
    ``on_epoch`` gets each epoch's history entry plus ``epochs`` (the most there will be),
    for a progress bar that is not a terminal's (the studio's).
    """
    from tqdm import tqdm

    set_deterministic(seed)
    gen = torch.Generator().manual_seed(seed)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    noise_scale = _noise_scale(X)
    wt = _balanced_weights(y, w, net.cfg.n_classes)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps = max(1, math.ceil(len(X) / batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps)
    augment_batch = (lambda xb: _augment(xb, gen, ring, noise_scale)) if augment else None
    best = (-1.0, 0, copy.deepcopy(net.state_dict()), math.inf)
    result = FitResult(0, 0, 0.0)
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False, unit="epoch")
    for epoch in bar:
        net.train()
        total = _train_epoch(net, _batches(Xt, yt, wt, gen, batch, steps, augment_batch), opt, sched)
        acc, vloss = _held_out_score(net, Xval, yval)
        result.history.append({"epoch": epoch + 1, "loss": total / len(X), "val_accuracy": acc,
                               "val_loss": vloss})
        bar.set_postfix(loss=f"{total / len(X):.3f}", val=f"{acc:.3f}")
        if on_epoch:
            on_epoch(dict(result.history[-1], epochs=epochs))
        # a small validation set saturates early (4 takes: 100 % after a few epochs), so
        # equal accuracy is decided by the validation loss (the more confident model)
        # without validation windows (train --no-validation) the last epoch is kept
        if acc > best[0] or (acc == best[0] and vloss < best[3]) or not len(yval):
            best = (acc, epoch + 1, copy.deepcopy(net.state_dict()), vloss)
        elif epoch + 1 - best[1] >= patience:
            break
    bar.close()
    net.load_state_dict(best[2])
    net.eval()
    result.best_val_accuracy, result.best_epoch = best[0], best[1]
    result.best_val_loss = best[3]
    result.epochs_run = len(result.history)
    return result


def save_checkpoint(path, net: TemperamentNet, data_spec: dict, extra: dict | None = None) -> None:
    """State dict + architecture + data spec: all pruning needs to rebuild and fine-tune."""
    torch.save({"format": "lanthorn-checkpoint", "version": 1, "arch": net.cfg.to_json(),
                "state_dict": net.state_dict(), "data": data_spec, **(extra or {})}, path)


def load_checkpoint(path) -> tuple[TemperamentNet, dict]:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != "lanthorn-checkpoint":
        from lanthorn.errors import UserError
        raise UserError(f"{path}: not a lanthorn training checkpoint")
    net = TemperamentNet(ArchConfig.from_json(ckpt["arch"]))
    net.load_state_dict(ckpt["state_dict"])
    net.eval()
    return net, ckpt
