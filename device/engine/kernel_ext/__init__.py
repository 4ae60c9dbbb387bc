"""The C kernel as a CPython extension (``_lk``), built by setup.py from
``device/engine/kernel_ext/_lk_module.c`` and every ``firmware/kernel/*.c``. Optional: it is
absent when no C compiler was available at install time, and :mod:`lanthorn.device.engine.engine_c`
then raises ImportError so the runtime falls back to the numpy reference. Nothing is
imported here, so importing this package never fails."""
