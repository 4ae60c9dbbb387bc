"""Device commands (``lanthorn run``, ``lanthorn demo``) keep numpy's BLAS single-threaded:
the variables are set before the command module (and so numpy) is imported, unless the
person set them; other commands are left alone."""
import os

import pytest

from lanthorn import cli

VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def _main_help(name):
    with pytest.raises(SystemExit):
        cli.main([name, "--help"])


@pytest.fixture
def clean_env(monkeypatch):
    for var in VARS:
        monkeypatch.setenv(var, "x")        # recorded, so restored after the test
        monkeypatch.delenv(var)
    return monkeypatch


@pytest.mark.parametrize("name", cli.DEVICE_COMMANDS)
def test_device_commands_set_single_thread(clean_env, name, capsys):
    _main_help(name)
    assert all(os.environ.get(v) == "1" for v in VARS)


def test_a_value_set_on_purpose_is_kept(clean_env, capsys):
    clean_env.setenv("OPENBLAS_NUM_THREADS", "2")
    _main_help("run")
    assert os.environ["OPENBLAS_NUM_THREADS"] == "2" and os.environ["OMP_NUM_THREADS"] == "1"


def test_other_commands_do_not(clean_env, capsys):
    _main_help("inspect")
    assert not any(v in os.environ for v in VARS)
