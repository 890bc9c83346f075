"""``dpo-score --help``: every command, argument and option is described, defaults are shown,
and the same argument is described the same way in every command (issue 15, point 5)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from DPOScoringLib.cli.main import build_parser


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def described(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        yield action


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_argument_and_option_is_described_with_its_default(name):
    parser = commands()[name]
    for action in described(parser):
        label = action.option_strings[0] if action.option_strings else action.metavar or action.dest
        assert action.help and len(action.help) > 10, f"{name} {label}: no help"
        shows_default = action.default in (None, False) or "default" in action.help
        assert shows_default, f"{name} {label}: default {action.default!r} not shown in its help"


def test_each_command_has_a_one_line_summary():
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summaries = {choice.dest: choice.help for choice in action._choices_actions}
    assert set(summaries) == set(commands()) and all(summaries.values())


def test_same_argument_same_description_everywhere():
    helps: dict[str, set[str]] = {}
    for parser in commands().values():
        for action in described(parser):
            key = action.option_strings[0] if action.option_strings else action.metavar
            if key in ("CT", "--lobe-method", "--lobes-from", "--reader", "--def1", "--def2", "--dendriform-nodules",
                       "--quiet"):
                helps.setdefault(key, set()).add(action.help)
    assert "CT" in helps and all(len(texts) == 1 for texts in helps.values()), helps


def test_rendered_help_shows_what_the_issue_found_missing():
    def render(*argv):
        return subprocess.run([sys.executable, "-m", "DPOScoringLib", *argv, "--help"], capture_output=True,
                              text=True, encoding="utf-8", timeout=60).stdout.replace("\n", " ")

    def squeeze(text):
        return " ".join(text.split())

    batch, lobes, run = squeeze(render("batch")), squeeze(render("lobes")), squeeze(render("run"))
    assert "(default: 1)" in batch and "each in its own process" in batch
    assert "DICOM series" in run and "how the lobes are made" in run
    assert "where lungmask runs" in lobes and "LTRCLobes numbering" in lobes and "(default: auto)" in lobes
