"""Build glue that pyproject.toml cannot express on its own.

* Packages: each top-level layer folder (device/, host/, quantize/, hardware/) is installed
  as a subpackage of `lanthorn`; this walks them so new subpackages need no registration.
* The optional C kernel: sources live once in firmware/kernel (shared with the
  microcontroller build). It is built as an *optional* extension: when no compiler is
  present the install still succeeds and the runtime falls back to the numpy reference.
"""
import os

from setuptools import Extension, setup

LAYERS = {"lanthorn": "lanthorn", "lanthorn.device": "device", "lanthorn.host": "host",
          "lanthorn.quantize": "quantize", "lanthorn.hardware": "hardware"}


def find_packages():
    """Every folder with an ``__init__.py``, and every data folder inside one (the studio's
    static/ and static/vendor/, the model report): named too, so setuptools ships their
    files without ~120 lines of "Package would be ignored" warnings on every install."""
    packages, package_dir = [], {}
    for name, folder in LAYERS.items():
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
            rel = os.path.relpath(root, folder)
            pkg = name if rel == "." else name + "." + rel.replace(os.sep, ".")
            parent = pkg.rsplit(".", 1)[0]
            if "__init__.py" in files or (parent in package_dir and files and all(
                    d.isidentifier() for d in os.path.relpath(root, folder).split(os.sep))):
                packages.append(pkg)
                package_dir[pkg] = root
    return packages, package_dir


def kernel_extensions():
    """The C kernel as an optional CPython extension (see firmware/kernel/README.md)."""
    glue = os.path.join("device", "engine", "kernel_ext", "_lk_module.c")
    if not os.path.exists(glue) or os.environ.get("LANTHORN_NO_C"):
        return []
    kernel_dir = os.path.join("firmware", "kernel")
    sources = [glue] + sorted(
        os.path.join(kernel_dir, f) for f in os.listdir(kernel_dir) if f.endswith(".c"))
    # The int8 arithmetic must be bit-exact with onnxruntime: no fused multiply-add, no
    # fast-math. SIMD variants are selected at run time, so the baseline stays portable.
    flags = ["-O3", "-std=c11", "-ffp-contract=off", "-fno-fast-math", "-Wall"]
    return [Extension("lanthorn.device.engine.kernel_ext._lk", sources=sources,
                      include_dirs=[kernel_dir], extra_compile_args=flags, optional=True)]


packages, package_dir = find_packages()
setup(packages=packages, package_dir=package_dir, ext_modules=kernel_extensions())
