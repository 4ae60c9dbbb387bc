"""The ``lanthorn`` subcommands, one thin module each, beside the dispatcher (``lanthorn.cli``).

A command module parses its arguments (``add_arguments(parser)``), calls library code in
the layer that owns the work (``lanthorn.device``, ``lanthorn.hardware``, ``lanthorn.quantize``,
``lanthorn.host``) and prints (``run(args) -> int``). Keeping them out of the runtime means
the device package holds only what runs on the object, and a command can use any layer.

Nothing is imported here: ``lanthorn.cli`` imports a command module only when that command
runs, and each module imports heavy libraries (onnx, torch) inside ``run`` or in the
library it calls, so ``lanthorn selftest`` on a Raspberry Pi never loads host code.
"""
