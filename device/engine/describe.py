"""What is inside a bundle, as plain data: card, input spec, labels, layers with their MACs
and bytes, provenance and who signed it (``lanthorn inspect`` prints it; the fuzz tests and
other tools read it). Reading it never runs the model.
"""
from __future__ import annotations


def describe(bundle) -> dict:
    """Everything `inspect` shows, as plain data (also used by other tools)."""
    from lanthorn.device.engine.graph import layer_macs, layer_param_bytes
    g = bundle.graph
    layers = []
    for layer in g.layers:
        ins = [list(g.tensors[i].shape) for i in layer.inputs]
        out = g.tensors[layer.outputs[0]]
        layers.append({"name": layer.name, "op": layer.op, "inputs": ins, "output": list(out.shape),
                       "macs": layer_macs(layer, g), "param_bytes": layer_param_bytes(layer),
                       "out_scale": out.scale, "out_zero_point": out.zero_point})
    # "sha256" stays the internal digest (the push protocol and model info compare it);
    # "file_sha256" is what sha256sum prints for the file
    return {"sha256": bundle.sha256, "internal_digest": bundle.sha256,
            "file_sha256": bundle.file_sha256, "build": bundle.build or {},
            "card": bundle.card, "input_spec": bundle.input_spec.to_json(),
            "labels": list(bundle.labels), "provenance": bundle.provenance,
            "macs": sum(x["macs"] for x in layers),
            "param_bytes": sum(x["param_bytes"] for x in layers),
            "twin_bytes": len(bundle.twin or b""), "layers": layers,
            "signature": _signature(bundle)}


def _signature(bundle) -> dict | None:
    """Who signed the bundle and whether the signature matches its content."""
    if bundle.signature is None:
        return None
    from lanthorn.device.engine import signing
    from lanthorn.errors import UserError
    public, sig = bundle.signature
    try:
        valid = signing.verify(public, sig, bytes.fromhex(bundle.sha256))
    except UserError:
        valid = None                         # no cryptography here: cannot tell
    return {"key": signing.key_text(public), "valid": valid}
