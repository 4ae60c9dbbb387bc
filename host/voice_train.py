"""Training the voice: a character-level MLP over the mood and the last characters.

Why this architecture (measured, see ``lanthorn voice train --sweep`` and the report): the
int8 engine already runs embedding + dense exactly like onnxruntime (the bench's
``char_lm``), and a GRU would need a recurrent state the engine has no operator for. What
the model reads decides how it sounds (issue 24): a window of 4 characters (less than a
word) babbles; 12 characters trained long recite whole lines. A *word window* (the word
being written and the one before it, :func:`lanthorn.device.piece.voice.word_window`) trained
long learns which word follows which, so it recombines the corpus at every shared word.

Candidates are chosen by tasting, not by perplexity: the sweep trains each on the same
split and seed and tastes it with the device's own decoder and the tasting panel
(:mod:`lanthorn.quantize.voice_taste`: corpus words, new phrases, corpus word pairs,
complete phrases, mood legibility, plus held-out perplexity), and :func:`pick` takes the
best panel score (ties: fewer MACs per character). :data:`DEFAULT_ARCH` and
:data:`DEFAULT_EPOCHS` are what it picked for the shipped corpus.

Graph (ONNX, opset 17, batch 1)::

    tokens int64 [1, 1 + context] -> Gather(embedding [chars + moods, dim]) -> Flatten
      -> Gemm(hidden) -> Relu -> Gemm(chars) -> Softmax -> probs [1, chars]

Seeded and reproducible: one thread, deterministic kernels, a seeded generator for the
shuffles; the same corpus, architecture and seed give the same ONNX bytes.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lanthorn.device.piece.behaviour import DEFAULT_MOODS
from lanthorn.device.piece.voice import VoiceSpec
from lanthorn.quantize.voice_corpus import examples, load_corpus, split_lines, vocabulary

META_KIND = "lanthorn.kind"   # ONNX metadata: "voice" (so 'lanthorn quantize' knows it)
META_SPEC = "lanthorn.voice"  # ONNX metadata: the VoiceSpec as JSON


@dataclass
class VoiceArch:
    context: int = 4
    dim: int = 16
    hidden: int = 128
    words: int = 0       # > 0: a word window of this many words before the current one

    def macs(self, n_vocab: int) -> int:
        """Multiply-accumulates per character (the embedding lookup is free)."""
        return (1 + self.context) * self.dim * self.hidden + self.hidden * n_vocab

    def label(self) -> str:
        window = f" words{self.words}" if self.words else ""
        return f"mlp ctx{self.context}{window} d{self.dim} h{self.hidden}"

    def spec(self, vocab: str, moods) -> VoiceSpec:
        return VoiceSpec(vocab, tuple(moods), self.context, self.words)


#: candidates the sweep compares: (architecture, epochs)
SWEEP = ((VoiceArch(4, 16, 128), 10), (VoiceArch(8, 16, 128), 30),
         (VoiceArch(12, 16, 128), 30), (VoiceArch(12, 16, 128), 60),
         (VoiceArch(8, 16, 128, words=1), 60), (VoiceArch(12, 16, 128, words=1), 30),
         (VoiceArch(12, 16, 128, words=1), 60), (VoiceArch(12, 16, 128, words=1), 100),
         (VoiceArch(16, 16, 128, words=2), 60))
#: phrases per mood the sweep tastes each candidate with (the shipped voice gets the full panel)
SWEEP_SEEDS = 40
PICK_RULE = ("the best tasting-panel score (the mean of the five panel shares, each up to its "
             "target, minus 0.1 per target missed); ties: fewer MACs per character")
#: what the sweep picked on the shipped corpus (data/voice, seed 0; the figures are in
#: device/models/voice-report.json)
DEFAULT_ARCH = VoiceArch(8, 16, 128, words=1)
DEFAULT_EPOCHS = 60


def _torch_net(spec: VoiceSpec, arch: VoiceArch):
    import torch
    from torch import nn

    class VoiceNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(spec.n_tokens, arch.dim)
            self.fc = nn.Linear(spec.input_len * arch.dim, arch.hidden)
            self.out = nn.Linear(arch.hidden, len(spec.vocab))

        def forward(self, x):
            h = torch.relu(self.fc(self.emb(x).flatten(1)))
            return self.out(h)

    return VoiceNet()


def fit(spec: VoiceSpec, arch: VoiceArch, x, y, w, epochs: int, seed: int, lr: float = 3e-3,
        batch: int = 128, log=None):
    """Train a VoiceNet on examples; weighted cross-entropy (the sources' weights)."""
    import torch

    from lanthorn.quantize.net import set_deterministic  # before torch: it fixes the kernels
    set_deterministic(seed)
    net = _torch_net(spec, arch)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
    X, Y, W = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(w)
    W = W / W.mean()
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(len(X), generator=gen)
        total = 0.0
        for i in range(0, len(X), batch):
            b = perm[i:i + batch]
            loss = (torch.nn.functional.cross_entropy(net(X[b]), Y[b], reduction="none") * W[b]).sum() / W[b].sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        sched.step()
        if log:
            log(f"epoch {epoch + 1}/{epochs}: weighted loss {total / len(X):.3f}")
    return net.eval()


def nll_per_example(net, x, y) -> np.ndarray:
    import torch
    with torch.no_grad():
        logp = torch.log_softmax(net(torch.from_numpy(x)), dim=-1)
        return (-logp[torch.arange(len(y)), torch.from_numpy(y)]).numpy().astype(np.float64)


def perplexity_by_source(nll: np.ndarray, srcs: list[str]) -> dict:
    """exp(mean NLL per character) overall and per source."""
    out = {"all": float(math.exp(nll.mean())) if nll.size else None}
    for s in sorted(set(srcs)):
        m = np.array([t == s for t in srcs])
        out[s] = float(math.exp(nll[m].mean()))
    return out


def export_onnx(net, spec: VoiceSpec, arch: VoiceArch, corpus: str = "") -> bytes:
    """The float ONNX, written with onnx.helper from the trained weights (stable bytes)."""
    import json

    import onnx
    from onnx import TensorProto, helper, numpy_helper
    p = {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    inits = [numpy_helper.from_array(p["emb.weight"], "embedding"),
             numpy_helper.from_array(p["fc.weight"], "fc.weight"),
             numpy_helper.from_array(p["fc.bias"], "fc.bias"),
             numpy_helper.from_array(p["out.weight"], "out.weight"),
             numpy_helper.from_array(p["out.bias"], "out.bias")]
    nodes = [helper.make_node("Gather", ["embedding", "tokens"], ["embedded"], name="embed", axis=0),
             helper.make_node("Flatten", ["embedded"], ["flat"], name="flatten", axis=1),
             helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["fc_out"], name="fc", transB=1),
             helper.make_node("Relu", ["fc_out"], ["hidden"], name="relu"),
             helper.make_node("Gemm", ["hidden", "out.weight", "out.bias"], ["logits"], name="out", transB=1),
             helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1)]
    g = helper.make_graph(nodes, "voice", [helper.make_tensor_value_info(
        "tokens", TensorProto.INT64, [1, spec.input_len])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, len(spec.vocab)])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="lanthorn")
    m.ir_version = 8
    m.doc_string = f"lanthorn voice: {arch.label()}, {len(spec.vocab)} characters, moods " \
                   f"{', '.join(spec.moods)}"
    helper.set_model_props(m, {META_KIND: "voice", META_SPEC: json.dumps(spec.to_json()),
                               "lanthorn.arch": json.dumps(asdict(arch)),
                               "lanthorn.corpus": str(corpus)})
    onnx.checker.check_model(m)
    return m.SerializeToString()


def train_voice(corpus_dir, out, arch: VoiceArch = DEFAULT_ARCH, epochs: int = 30,
                seed: int = 0, holdout: float = 0.1, moods=DEFAULT_MOODS, log=print) -> dict:
    """Train on ``corpus_dir``, write the float ONNX ``out``; returns the figures."""
    from lanthorn.device.storage.atomic import atomic_write_bytes
    from lanthorn.errors import UserError
    t0 = time.perf_counter()
    corpus = load_corpus(corpus_dir)
    if not corpus.lines:
        raise UserError(f"{corpus_dir}: the corpus has no lines yet (lanthorn voice import)")
    if not any(s.weight > 0 for s in corpus.sources.values()):
        raise UserError(f"{corpus_dir}: every source has weight 0; nothing to learn from")
    spec = arch.spec(vocabulary(corpus), moods)
    train_lines, held = split_lines(corpus, holdout)
    x, y, w, _, _ = examples(train_lines, spec, corpus.sources)
    keep = w > 0
    x, y, w = x[keep], y[keep], w[keep]
    log(f"corpus: {len(corpus.lines)} lines from {len(corpus.sources)} sources, "
        f"{len(spec.vocab)} characters; {len(x):,} training examples; {arch.label()}, "
        f"{arch.macs(len(spec.vocab)):,} MACs per character")
    net = fit(spec, arch, x, y, w, epochs, seed)
    figures = {"arch": asdict(arch), "macs_per_char": arch.macs(len(spec.vocab)),
               "epochs": epochs, "seed": seed, "holdout": holdout, "vocab": spec.vocab,
               "train_examples": int(len(x)), "held_out_lines": len(held)}
    if held:
        hx, hy, _, hs, _ = examples(held, spec)
        figures["perplexity_float"] = perplexity_by_source(nll_per_example(net, hx, hy), hs)
    out = Path(out)
    atomic_write_bytes(out, export_onnx(net, spec, arch, corpus=str(corpus_dir)))
    figures["seconds"] = round(time.perf_counter() - t0, 2)
    ppl = figures.get("perplexity_float", {}).get("all")
    log(f"wrote {out} ({figures['seconds']} s)" + (f"; held-out perplexity {ppl:.2f}" if ppl else ""))
    return figures


def pick(rows: list[dict]) -> dict:
    """The sweep's choice (see :data:`PICK_RULE`)."""
    return max(rows, key=lambda r: (r["score"], -r["macs_per_char"]))


def taste_float(net, spec: VoiceSpec, corpus, x, params: dict, seeds: int = SWEEP_SEEDS) -> dict:
    """The tasting panel of a float candidate, written by the device's decoder: its logits
    quantized to int8 on a scale calibrated on training contexts (as the quantizer would),
    read by the same sampler, constrained by the corpus's lexicon."""
    import torch

    from lanthorn.device.piece.voice import Voice
    from lanthorn.quantize.voice_quantize import lexicon_bytes
    from lanthorn.quantize.voice_taste import panel
    with torch.no_grad():
        z = net(torch.from_numpy(x[::max(1, len(x) // 1024)])).numpy()
    lo, hi = min(float(z.min()), 0.0), max(float(z.max()), 0.0)
    scale = (hi - lo) / 255 or 1.0
    zp = int(np.clip(round(-128 - lo / scale), -128, 127))

    def step(tokens):
        with torch.no_grad():
            y = net(torch.from_numpy(np.asarray(tokens, np.int64).reshape(1, -1))).numpy()
        return np.clip(np.rint(y.reshape(-1) / scale) + zp, -128, 127).astype(np.int8)
    voice = Voice.from_parts(spec, step, scale, zp, lexicon_bytes(corpus), "candidate")
    return panel(voice, corpus, params, seeds=seeds, perplexity=False)


def sweep(corpus_dir, candidates=SWEEP, seed: int = 0, holdout: float = 0.1,
          moods=DEFAULT_MOODS, seeds: int = SWEEP_SEEDS, log=print) -> list[dict]:
    """Train each (architecture, epochs) on the same split and seed; taste each with the
    panel (:func:`taste_float`), and measure held-out perplexity and MACs per character."""
    from lanthorn.device.piece.params import ParamStore
    from lanthorn.quantize.voice_taste import score
    corpus = load_corpus(corpus_dir)
    vocab = vocabulary(corpus)
    train_lines, held = split_lines(corpus, holdout)
    params = ParamStore().snapshot()
    rows = []
    for arch, epochs in candidates:
        spec = arch.spec(vocab, moods)
        x, y, w, _, _ = examples(train_lines, spec, corpus.sources)
        t0 = time.perf_counter()
        net = fit(spec, arch, x, y, w, epochs, seed)
        hx, hy, _, hs, _ = examples(held, spec)
        ppl = perplexity_by_source(nll_per_example(net, hx, hy), hs)
        p = taste_float(net, spec, corpus, x, params, seeds)
        rows.append({"arch": arch.label(), **asdict(arch), "epochs": epochs,
                     "macs_per_char": arch.macs(len(vocab)), "perplexity": ppl["all"],
                     "perplexity_by_source": ppl,
                     **{k: p[k] for k in ("phrases", "corpus_words", "new", "pairs", "complete",
                                          "mood")},
                     "score": score(p), "seconds": round(time.perf_counter() - t0, 2)})
        r = rows[-1]
        log(f"{arch.label():<26} {epochs:3d} epochs {r['macs_per_char']:>7,} MACs/char  words "
            f"{r['corpus_words']:.0%} new {r['new']:.0%} pairs {r['pairs']:.0%} complete "
            f"{r['complete']:.0%} mood {r['mood']:.0%}  ppl {r['perplexity']:.2f}  score "
            f"{r['score']:.3f}  ({r['seconds']} s)")
    return rows


#: the bounds ``lanthorn voice train`` accepts for each architecture knob
ARCH_BOUNDS = {"context": (1, 64), "hidden": (4, 1024), "dim": (2, 128), "words": (0, 8)}


def choose_arch(corpus_dir, overrides: dict, run_sweep: bool = False, seed: int = 0,
                log=print) -> tuple[VoiceArch, list[dict] | None, int | None]:
    """The architecture to train: DEFAULT_ARCH with the given knobs, checked against
    ARCH_BOUNDS; or, with ``run_sweep``, the candidate :func:`pick` chooses (the rows and
    its epochs too; None without a sweep)."""
    from lanthorn.errors import UserError
    arch = VoiceArch(**{**asdict(DEFAULT_ARCH),
                        **{k: v for k, v in overrides.items() if v is not None}})
    for k, (lo, hi) in ARCH_BOUNDS.items():
        if not lo <= getattr(arch, k) <= hi:
            raise UserError(f"--{k} must be between {lo} and {hi}")
    if not run_sweep:
        return arch, None, None
    rows = sweep(corpus_dir, seed=seed, log=log)
    best = pick(rows)
    arch = arch_of(best)
    log(f"picked {arch.label()}, {best['epochs']} epochs ({PICK_RULE})")
    return arch, rows, best["epochs"]


def arch_of(row: dict) -> VoiceArch:
    return VoiceArch(row["context"], row["dim"], row["hidden"], row.get("words", 0))
