"""The cxr-keras command: one entry for every stage, help that shows defaults and examples,
and one clear line for the commonest mistakes."""

from __future__ import annotations

import argparse
from unittest import mock

import pytest

from cxr_keras import __version__
from cxr_keras.__main__ import COMMANDS, main
from cxr_keras.cli import run_cli
from cxr_keras.predict import main as predict_main
from cxr_keras.sample_data import sample_files


def test_the_overview_lists_every_command_and_a_typo_gets_a_suggestion(capsys):
    assert main([]) == 0
    overview = capsys.readouterr().out
    assert all(f"  {name}" in overview for name in COMMANDS)
    assert (
        main(["--version"]) == 0 and capsys.readouterr().out.strip() == f"cxr-keras {__version__}"
    )
    assert main(["evalute"]) == 2
    assert "did you mean 'evaluate'?" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help_with_examples_and_a_version(command, capsys):
    with pytest.raises(SystemExit) as stopped:
        main([command, "--help"])
    assert stopped.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: cxr-keras {command}")
    assert "examples:\n  cxr-keras " + command in text
    assert "``" not in text and ":mod:" not in text  # no reST markup
    with pytest.raises(SystemExit) as stopped:
        main([command, "--version"])
    assert stopped.value.code == 0 and capsys.readouterr().out.strip().endswith(__version__)


def test_help_shows_real_defaults_only(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--batch-size BATCH_SIZE images per forward pass (default: 32)" in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_an_empty_folder_and_a_file_for_a_folder_are_one_line_each(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as stopped:  # before any model is loaded
        run_cli(
            predict_main, ["--model", "kermany_pneumonia", "--out", "o", str(tmp_path / "empty")]
        )
    assert stopped.value.code == 2
    assert "nothing to predict in" in capsys.readouterr().err
    taken = tmp_path / "taken"
    taken.write_text("a file")
    film = str(sample_files("kermany")[0])
    with pytest.raises(SystemExit) as stopped:
        run_cli(
            predict_main,
            ["--model", "kermany_pneumonia", "--out", str(taken), "--runtime", "onnx", film],
        )
    assert stopped.value.code == 2
    assert f"{taken}: a file where a folder is expected" in capsys.readouterr().err


def test_every_option_of_every_command_says_what_it_does():
    parsers = []

    def capture(self, args=None, namespace=None):
        parsers.append(self)
        raise SystemExit(0)

    with mock.patch.object(argparse.ArgumentParser, "parse_args", capture):
        for command in COMMANDS:
            with pytest.raises(SystemExit):
                main([command])
    assert len(parsers) == len(COMMANDS)
    for parser in parsers:
        actions = list(parser._actions)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                actions += [a for sub in action.choices.values() for a in sub._actions]
        silent = [a.option_strings or a.dest for a in actions if not a.help]
        assert not silent, f"{parser.prog}: {silent}"
