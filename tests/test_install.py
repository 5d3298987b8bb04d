"""What each install can run: the base install and [serve] need no TensorFlow, and a stage
that needs the [full] extra says so in one line."""

from __future__ import annotations

import configparser
import re
from importlib.metadata import packages_distributions

import pytest

from cxr_keras.cli import run_cli
from cxr_keras.core.install import FULL_EXTRA_MODULES
from tests.conftest import REPO


def _extras() -> tuple[list[str], dict[str, list[str]]]:
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")

    def names(text: str) -> list[str]:
        lines = [line.split("#")[0].strip() for line in text.splitlines()]
        return [re.split(r"[<>=!\[; ]", line)[0].lower() for line in lines if line]

    extras = {key: names(value) for key, value in setup["options.extras_require"].items()}
    return names(setup["options"]["install_requires"]), extras


def test_the_full_extras_import_names_are_the_ones_the_cli_recognises():
    base, extras = _extras()
    distributions = {}  # distribution -> its top-level import names, as installed here
    for module, dists in packages_distributions().items():
        for dist in dists:
            distributions.setdefault(dist.lower().replace("_", "-"), set()).add(module)
    for dist in extras["full"]:
        modules = distributions.get(dist)
        assert modules, f"{dist} of [full] is not installed here"
        assert modules & FULL_EXTRA_MODULES, f"{dist} ({sorted(modules)}) is not recognised"
    assert not set(base) & {"tensorflow", "keras", "scipy", "scikit-learn"}
    assert not set(extras["serve"]) & {"tensorflow", "keras", "cxr-keras"}


def test_a_stage_without_the_full_extra_says_what_to_install(capsys):
    def main(argv):
        raise ModuleNotFoundError("No module named 'keras_tuner'", name="keras_tuner.engine")

    with pytest.raises(SystemExit) as stopped:
        run_cli(main, [])
    assert stopped.value.code == 2
    assert "pip install 'cxr-keras[full]'" in capsys.readouterr().err

    def broken(argv):  # a module missing for another reason is a real bug: not hidden
        raise ModuleNotFoundError("No module named 'cxr_keras.nothing'", name="cxr_keras.nothing")

    with pytest.raises(ModuleNotFoundError):
        run_cli(broken, [])
