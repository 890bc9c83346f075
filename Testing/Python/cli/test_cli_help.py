"""``dpo-score --help``: every command, argument and option is described, defaults are shown,
and the same argument is described the same way in every command (issue 15, point 5)."""

from __future__ import annotations

import argparse
import re
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


def readme_synopsis() -> dict[str, str]:
    """The README's command synopsis (its "## Command line" code block), one text per command
    (``cohort sample`` apart from ``cohort``), continuation lines joined."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    block = text[text.index("## Command line"):].split("```")[1]
    entries: dict[str, str] = {}
    name = None
    for line in block.splitlines():
        if line.startswith("dpo-score "):
            words = line.split()
            name = " ".join(words[1:3]) if words[1:3] == ["cohort", "sample"] else words[1]
            entries[name] = line
        elif name and line.strip():
            entries[name] += " " + line
    return entries


POLICY_OPTIONS = {"--def1", "--def2", "--dendriform-nodules"}


def options_of(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in described(parser) for option in action.option_strings if option.startswith("--")}


def test_readme_synopsis_names_exactly_the_options_of_each_command():
    """Each command's synopsis in the README lists every option its --help has, and none it has not
    ("[policy options]" stands for the scoring policy's three, batch takes run's but two)."""
    from DPOScoringLib.cohort.cohort_cli import analysis_parser, sample_parser

    parsers = {name: parser for name, parser in commands().items() if name != "cohort"}
    parsers.update({"cohort": analysis_parser(), "cohort sample": sample_parser()})
    synopsis = readme_synopsis()
    assert set(synopsis) == set(parsers)
    for name, parser in parsers.items():
        text = synopsis[name]
        listed = set(re.findall(r"--[a-z0-9][a-z0-9-]*", text))
        if "[policy options]" in text:
            listed |= POLICY_OPTIONS
        if "[run's options but --force and --quiet]" in text:
            listed = (listed - {"--force", "--quiet"}) | (options_of(parsers["run"]) - {"--force", "--quiet"})
        wanted = options_of(parser)
        assert listed == wanted, f"{name}: missing {sorted(wanted - listed)}, not an option {sorted(listed - wanted)}"
