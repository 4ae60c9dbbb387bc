"""The quantization report: what an artist reads at a glance, and the same figures for machines.

``write_report(result, data, folder)`` writes into ``folder``:

* ``report.md``: float vs int8 accuracy per variant (unpruned, pruned levels tried), size
  and MACs, calibration and bias correction, per-layer quantization error, pruning and
  sensitivity tables, confusion matrices, and the provenance "tasting notes" (who gave the
  data, with what consent, under what licence, and how much of the model each source is);
* ``confusion.png``, ``layers.png``, ``pruning.png``, ``sensitivity.png`` (matplotlib, Agg
  backend: no display needed);
* ``report.json``: every figure above (``QuantizeResult.to_json()``) plus the file names.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lanthorn.device.storage.atomic import atomic_write_bytes, atomic_write_text


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f}%"


def _kb(n) -> str:
    return "–" if n is None else f"{n / 1024:.1f} KiB"


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> str:
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    _plt().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path.name


def plot_confusions(ev, labels, path: Path) -> str | None:
    if ev.float_confusion is None:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    names = list(labels) or [str(i) for i in range(len(ev.float_confusion))]
    for ax, cm, title, acc in ((axes[0], ev.float_confusion, "float", ev.float_accuracy),
                               (axes[1], ev.int8_confusion, "int8", ev.int8_accuracy)):
        cm = np.asarray(cm, float)
        rows = cm.sum(axis=1, keepdims=True)
        norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for (i, j), v in np.ndenumerate(cm):
            if v:
                ax.text(j, i, int(v), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.6 else "black")
        k = len(cm)
        ax.set_xticks(range(k), names[:k], rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(k), names[:k], fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("truth")
        ax.set_title(f"{title} ({_pct(acc)}) – {ev.name}")
    return _save(fig, path)


def plot_layers(layers, path: Path) -> str | None:
    if not layers:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(layers) + 2), 3.6))
    names = [f"{r['node'].split('/')[-2] if r['node'].count('/') >= 2 else r['node']}\n{r['op']}"
             for r in layers]
    ax.bar(range(len(layers)), [r["sqnr_db"] for r in layers], color="#3b75af",
           label="activation vs float model")
    w = [r.get("weight_sqnr_db") for r in layers]
    xs = [i for i, v in enumerate(w) if v is not None]
    if xs:
        ax.plot(xs, [w[i] for i in xs], "o", color="#e07b39", label="weights alone")
    ax.set_xticks(range(len(layers)), names, fontsize=7)
    ax.set_ylabel("SQNR (dB, higher is better)")
    ax.set_title("quantization error per layer")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_pruning(evals, path: Path) -> str | None:
    if len(evals) < 2 or evals[0].float_accuracy is None:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, xlabel in ((axes[0], "macs", "MACs per inference"),
                            (axes[1], "bundle_bytes", "bundle bytes")):
        for attr, marker, lab in (("float_accuracy", "o", "float"), ("int8_accuracy", "s", "int8")):
            xs = [getattr(e, key) for e in evals]
            ys = [100 * getattr(e, attr) for e in evals]
            ax.plot(xs, ys, marker, label=lab, alpha=0.8)
            for x, y, e in zip(xs, ys, evals, strict=True):
                if attr == "int8_accuracy":
                    ax.annotate(e.name, (x, y), fontsize=7, xytext=(4, -10),
                                textcoords="offset points")
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_formatter(_thousands())
        ax.set_ylabel("held-out accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("accuracy against cost for the pruning levels tried")
    return _save(fig, path)


def plot_sensitivity(sens: dict, path: Path) -> str | None:
    if not sens:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, d in sens.items():
        fr = sorted(d, key=float)
        ax.plot([0] + [100 * float(f) for f in fr], [0] + [100 * d[f] for f in fr], "o-",
                label=name, ms=3)
    ax.set_xlabel("fraction of this layer pruned alone (%)")
    ax.set_ylabel("held-out windows changing class (%)")
    ax.set_title("per-layer sensitivity")
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _thousands():
    from matplotlib.ticker import FuncFormatter
    return FuncFormatter(lambda v, _pos: f"{v / 1000:g}k" if v else "0")


def _table(header, rows) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def tasting_notes(prov: dict) -> list[str]:
    """The provenance, written for a person: one paragraph per source."""
    sources = prov.get("sources") or []
    if not sources:
        return ["_No dataset provenance (the model was calibrated on an .npz of inputs)._"]
    out = []
    for s in sorted(sources, key=lambda s: -s.get("share", 0)):
        kind = "synthetic" if s.get("synthetic") else "recorded"
        consent = s.get("consent") or "**no consent recorded**"
        bits = [f"**{s['source']}** ({kind}, {100 * s.get('share', 0):.0f}% of the training "
                f"signal, weight {s.get('weight', 1):g}, {s.get('windows', 0)} windows)"]
        bits.append(f"by {s.get('author') or 'unknown author'}")
        bits.append(f"consent: {consent}")
        bits.append(f"licence: {s.get('licence') or 'none stated'}")
        if s.get("device"):
            bits.append(f"device: {s['device']}")
        if s.get("date"):
            bits.append(f"date: {s['date']}")
        line = "- " + "; ".join(bits) + "."
        if s.get("notes"):
            line += f" _{s['notes']}_"
        out.append(line)
    return out


def warnings_for(result) -> list[str]:
    w = []
    base, final = result.evaluations[0], result.final
    if base.float_accuracy is not None and base.float_accuracy - base.int8_accuracy > 0.005:
        w.append(f"int8 loses {100 * (base.float_accuracy - base.int8_accuracy):.2f} points "
                 f"against float (target ≤ 0.5): try another --calibration or more data")
    if final is not base and base.float_accuracy is not None and \
            base.float_accuracy - final.int8_accuracy > 0.01:
        w.append(f"the pruned int8 model is {100 * (base.float_accuracy - final.int8_accuracy):.2f}"
                 f" points below the unpruned float model (target ≤ 1): prune less or fine-tune "
                 f"from the checkpoint")
    for s in result.provenance.get("sources") or []:
        if not s.get("consent"):
            w.append(f"source {s['source']!r} has no consent recorded")
    if result.provenance.get("synthetic_share") == 1.0:
        w.append("all training data is synthetic: record demonstrations on the real object "
                 "(lanthorn record) before trusting it with visitors")
    return w


def write_report(result, data, folder) -> Path:
    """Write report.md, report.json and the plots into ``folder``; returns report.md's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    labels = tuple(result.bundle.labels) or data.labels
    pngs = _plots(result, labels, folder)
    md = _summary(result, data)
    # what an artist asks first: which gestures it knows and which it mixes up
    md += _recognition(result.final, labels)
    md += _confusions(result.final, labels, pngs["confusion"])
    md += ["## Engineering figures", "", "What the int8 conversion and pruning did, layer by layer.", ""]
    md += _float_against_int8(result, pngs["pruning"])
    md += _layer_errors(result, pngs["layers"])
    if result.pruning:
        md += _pruning(result.pruning, result.final, pngs["sensitivity"])
    md += ["## Tasting notes: what went into this model", ""] + tasting_notes(result.provenance)
    md += [""]
    doc = result.to_json()
    # a report is a file to commit and compare (make model): no wall-clock figure (the
    # quantizer logs it), and the content digest, the same on every CPU, for the bundle
    doc.pop("seconds", None)
    doc.pop("sha256")
    doc["content_sha256"] = digest_of(result.out)
    doc["files"] = {"markdown": "report.md", **{k: v for k, v in pngs.items() if v}}
    atomic_write_text(folder / "report.json", json.dumps(doc, indent=1, sort_keys=True) + "\n")
    atomic_write_text(folder / "report.md", "\n".join(md))
    return folder / "report.md"


def digest_of(path: Path) -> str:
    """The bundle's content digest (lanthorn.device.engine.bundle.content_sha256)."""
    from lanthorn.device.engine.bundle import content_sha256
    return content_sha256(Path(path).read_bytes())


def _plots(result, labels, folder: Path) -> dict:
    """Every figure, drawn before the text: the Markdown links only the ones that exist
    (a plot with nothing to show, e.g. pruning with one variant, is not written)."""
    return {"confusion": plot_confusions(result.final, labels, folder / "confusion.png"),
            "layers": plot_layers(result.layers, folder / "layers.png"),
            "pruning": plot_pruning(result.evaluations, folder / "pruning.png"),
            "sensitivity": plot_sensitivity(result.pruning.get("sensitivity", {}),
                                            folder / "sensitivity.png")}


def _summary(result, data) -> list[str]:
    """The title, what was measured on what, and the warnings: what an artist must read
    before any table."""
    name = result.bundle.card.get("name", result.out.stem)
    md = [f"# Quantization report: {name}", ""]
    # the content digest, not the file's sha256: the same on any CPU that rebuilds this
    # bundle (the file's bytes also hold the build record, which names the CPU)
    digest = digest_of(result.out)
    md += [f"Bundle `{result.out.name}` (content digest `{digest[:16]}…`: every byte but its "
           f"build record), "
           f"{result.bundle.card.get('quantizer', '')}.", "",
           f"- dataset: {result.data}",
           f"- accuracy measured on held-out **{result.held_out}** sessions, calibration on "
           f"training sessions; {len(data.calib_x)} calibration windows",
           f"- calibration: **{result.calibration}**; bias correction: "
           f"**{'on' if result.bias_correction else 'off'}**", ""]
    warn = warnings_for(result)
    if warn:
        md += ["## Warnings", ""] + [f"- {w}" for w in warn] + [""]
    return md


def _float_against_int8(result, pruning_png) -> list[str]:
    """One row per variant tried, then the written bundle against the float file the artist
    started from (the comparison the project's size and MAC claims rest on)."""
    from lanthorn.quantize.quantizer import _compared
    final, base = result.final, result.evaluations[0]
    md = ["## Float against int8", ""]
    md += _table(["model", "float", "int8", "Δ points", "agreement", "MACs", "float ONNX",
                  "bundle", "bundle w/o twin", "bundle lzma", "float/bundle"],
                 [_variant_row(e, final) for e in result.evaluations])
    bare = final.extra.get("bundle_bytes_without_twin", final.bundle_bytes)
    md += ["", f"The written bundle against the unpruned float ONNX: "
           f"{_compared(base.float_bytes, final.bundle_bytes)} "
           f"({_compared(base.float_bytes, bare)} without the QDQ twin the bundle carries "
           f"for cross-checking), {base.macs / max(1, final.macs):.2f}× fewer MACs.", ""]
    if pruning_png:
        md += [f"![accuracy against cost]({pruning_png})", ""]
    return md


def _variant_row(e, final) -> list:
    """A variant's figures as table cells; "(written)" marks the one in the bundle."""
    delta = "–" if e.float_accuracy is None else f"{100 * (e.int8_accuracy - e.float_accuracy):+.2f}"
    return [e.name + (" (written)" if e is final else ""), _pct(e.float_accuracy),
            _pct(e.int8_accuracy), delta, _pct(e.agreement), f"{e.macs:,}",
            _kb(e.float_bytes), _kb(e.bundle_bytes),
            _kb(e.extra.get("bundle_bytes_without_twin")),
            _kb(e.extra.get("bundle_lzma_bytes")),
            f"{e.float_bytes / max(1, e.bundle_bytes):.2f}×"]


def _layer_errors(result, layers_png) -> list[str]:
    """Where the int8 model drifts from the float one, layer by layer (with the bias shift
    bias correction gave it), so a bad layer can be found by name."""
    md = ["## Per-layer quantization error", "",
          "SQNR of the int8 model's activation against the float model's at the same point "
          "(errors accumulate downstream), and of each layer's weights alone.", ""]
    md += _table(["layer", "op", "activation SQNR (dB)", "weight SQNR (dB)", "bias shift"],
                 [[r["node"], r["op"], r["sqnr_db"], r.get("weight_sqnr_db", "–"),
                   f"{result.bias_shifts[r['node']]:.4f}" if r["node"] in result.bias_shifts else "–"]
                  for r in result.layers])
    if layers_png:
        md += ["", f"![per-layer error]({layers_png})"]
    return md + [""]


def _pruning(p: dict, final, sensitivity_png) -> list[str]:
    """What pruning removed, what it left whole and why, how each layer took it, and the
    fine-tuning that followed (``p`` is ``PruneResult.to_json()``)."""
    md = ["## Pruning", "", f"{p['label']}; {p['method']}. Weights zero in the int8 "
          f"bundle: {100 * final.extra.get('int8_weight_zeros', 0):.1f}%.", ""]
    if p.get("layers"):
        md += _table(["layer", "channels before", "after", "removed", "sparsity"],
                     [[r["layer"], r["channels_before"], r["channels_after"],
                       f"{100 * r['fraction']:.0f}%",
                       f"{100 * r['sparsity']:.0f}%" if "sparsity" in r else "–"]
                      for r in p["layers"]])
        md += [""]
    if p.get("not_prunable"):
        md += ["Left whole: " + "; ".join(f"`{k}` ({v})" for k, v in p["not_prunable"].items()),
               ""]
    if p.get("sensitivity"):
        md += _sensitivity(p["sensitivity"], sensitivity_png)
    return md + _finetune(p.get("finetune") or {})


def _sensitivity(sens: dict, png) -> list[str]:
    """One column per fraction any layer was tried at (a layer not tried there reads nan)."""
    fr = sorted({f for d in sens.values() for f in d}, key=float)
    md = ["Sensitivity (share of held-out validation windows whose class changes when "
          "only this layer is pruned):", ""]
    md += _table(["layer"] + [f"{100 * float(f):.0f}%" for f in fr],
                 [[k] + [f"{100 * d.get(f, float('nan')):.1f}%" for f in fr]
                  for k, d in sens.items()])
    if png:
        md += ["", f"![sensitivity]({png})"]
    return md + [""]


def _finetune(ft: dict) -> list[str]:
    """One line on the fine-tuning run, if there was one (none without a checkpoint)."""
    if not ft:
        return []
    line = (f"Fine-tuning: widths {ft.get('widths')}, {ft.get('epochs_run', 0)} of "
            f"{ft.get('epochs')} epochs")
    if "val_accuracy" in ft:
        line += (f", best validation accuracy {100 * ft['val_accuracy']:.2f}% at epoch "
                 f"{ft.get('best_epoch')}")
    return [line + ".", ""]


#: A confusion is listed when at least this share of a gesture's windows go to another.
CONFUSION_SHARE = 0.05


def _recognition(final, labels) -> list[str]:
    """Per gesture: how often the int8 model recognises it (recall) and what it takes it
    for instead, worst first; nothing without held-out labels."""
    from lanthorn.quantize.metrics import per_class_recall
    if final.int8_confusion is None:
        return []
    cm = np.asarray(final.int8_confusion)
    recall = per_class_recall(cm)
    rows = []
    for i in sorted(range(len(labels)), key=lambda i: (np.nan_to_num(recall[i], nan=2.0), i)):
        n = int(cm[i].sum())
        if not n:
            continue
        mixed = [f"{labels[j]} {100 * cm[i, j] / n:.0f}%" for j in np.argsort(-cm[i], kind="stable")
                 if j != i and cm[i, j] / n >= CONFUSION_SHARE]
        rows.append([labels[i], f"{100 * recall[i]:.1f}%", str(n), ", ".join(mixed) or "-"])
    return (["## What it recognises (int8, held-out)", ""]
            + _table(["gesture", "recognised", "windows", "taken instead for"], rows) + [""])


def _confusions(final, labels, png) -> list[str]:
    """The written model's confusion matrices as text, float then int8 (none without
    held-out labels, e.g. calibrated on an .npz of inputs)."""
    from lanthorn.quantize.metrics import format_confusion
    if final.float_confusion is None:
        return []
    md = ["## Confusion matrices (held-out)", "", f"float ({final.name}):", "", "```",
          format_confusion(np.asarray(final.float_confusion), labels), "```", "",
          f"int8 ({final.name}):", "", "```",
          format_confusion(np.asarray(final.int8_confusion), labels), "```", ""]
    if png:
        md += [f"![confusion]({png})", ""]
    return md
