"""Suite-wide rules.

Under CI (``CI=true``, as `.ci/run` sets it) a skipped test is a failed test. The README's
test command promises that every proof runs (the aarch64 build under qemu, the fuzzers, the
simulated firmware, the browser...), so a tool that is missing or broken must turn CI red
with its name, never leave it green with the proof quietly not run. `scripts/system-deps.sh`
installs and probes the tools before the tests start.

One kind of skip stays a skip under CI: a proof that needs hardware this machine does not
have and no package can bring (an AVX-512 VNNI kernel on a CPU without it). Such a test skips
with a reason that starts with ``MACHINE_SKIP`` ("not on this machine:"), and says what ran instead.

Without CI (a contributor without root, say) tests keep skipping with a visible reason, which
``pytest -ra`` lists at the end.
"""
from __future__ import annotations

import os

import pytest

from lanthorn.quantize import determinism

# Training in this process (test_train, the studio's teach, pruning) must run torch with the
# CPU-independent kernels, which are fixed when torch is first imported: before any test does.
determinism.apply()

MACHINE_SKIP = "not on this machine:"
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _skip_reason(report) -> str:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return reason.removeprefix("Skipped: ")


def _ci_must_run(report) -> bool:
    return (IN_CI and report.skipped and not hasattr(report, "wasxfail")
            and not _skip_reason(report).startswith(MACHINE_SKIP))


def _as_ci_failure(report, what: str) -> None:
    reason = _skip_reason(report)
    report.outcome = "failed"
    report.longrepr = (f"{what} was skipped under CI=true, which must run it: {reason}\n"
                       "(scripts/system-deps.sh installs the system tools; `make test` installs "
                       "the Python extras)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if _ci_must_run(report):
        _as_ci_failure(report, item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if _ci_must_run(report):
        _as_ci_failure(report, f"module {collector.nodeid}")


# The quick local loop (`make test-fast`, ``-m "not slow"``) leaves out whole modules whose
# proofs build or run something big: cross-compiled and simulated firmware, real processes
# over pseudo-terminals, a browser, model rebuilds, fault campaigns. `make test` (and CI)
# always runs them; single slow tests elsewhere carry ``@pytest.mark.slow`` themselves.
SLOW_MODULES = frozenset({
    "test_aarch64_qemu", "test_mcu_qemu", "test_simavr", "test_firmware_build",
    "test_arm_cost_model", "test_studio_browser", "test_torture", "test_default_voice",
    "test_default_model", "test_teach_a_gesture", "test_voice_e2e", "test_console_e2e",
    "test_packaging", "test_bundle_fuzz", "test_demo",
})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module is not None and item.module.__name__.rpartition(".")[2] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
