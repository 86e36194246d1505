"""One CLI style (issue 12, item 7): every option of every `dgfpga` and `dgfpga-host`
subcommand has help text, every output is spelled `-o/--out`, and the retired spellings
(--output, --out-dir, --json, --n, -n, --n-eval, --net, --folder, --selfcheck) are gone."""
from __future__ import annotations

import argparse

import pytest

RETIRED = {"--output", "--out-dir", "--json", "--n", "-n", "--n-eval", "--net", "--folder",
           "--selfcheck", "--split"}
# option strings that name an output: they must be exactly -o/--out
OUTPUT_WORDS = ("out", "output", "json", "write")


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def _all():
    from dgfpga.cli.main import build_parser
    from dgfpga_host.cli import build_parser as host_parser
    out = []
    for prog, p in (("dgfpga", build_parser()), ("dgfpga-host", host_parser())):
        out.append((prog, p))
        for name, sp in _subparsers(p):          # commands, and their actions (ci init)
            out.append((f"{prog} {name}", sp))
            out += [(f"{prog} {name} {act}", ap) for act, ap in _subparsers(sp)]
    return out


PARSERS = _all()


def _options(parser):
    return [a for a in parser._actions
            if not isinstance(a, (argparse._HelpAction, argparse._VersionAction,
                                  argparse._SubParsersAction))]


def test_the_walk_sees_every_command():
    from dgfpga.cli.main import COMMANDS
    names = {n for n, _ in PARSERS}
    assert {f"dgfpga {c.replace('_', '-')}" for c in COMMANDS} <= names
    assert {"dgfpga-host bench", "dgfpga-host info"} <= names
    assert len([n for n in names if n.count(" ") <= 1]) == len(COMMANDS) + 2 + 2


@pytest.mark.parametrize("name,parser", PARSERS, ids=[n for n, _ in PARSERS])
def test_every_option_has_help(name, parser):
    missing = [a.option_strings or [a.dest] for a in _options(parser)
               if not a.help or a.help == argparse.SUPPRESS or not a.help.strip()]
    assert not missing, f"{name}: options without help: {missing}"


@pytest.mark.parametrize("name,parser", PARSERS, ids=[n for n, _ in PARSERS])
def test_outputs_are_spelled_o_out(name, parser):
    for a in _options(parser):
        words = {w for s in a.option_strings if s.startswith("--") for w in s[2:].split("-")}
        if a.dest == "out" or words & set(OUTPUT_WORDS):
            assert a.option_strings == ["-o", "--out"], (
                f"{name}: output option {a.option_strings} must be spelled -o/--out")
    outs = [a for a in _options(parser) if a.dest == "out"]
    assert len(outs) <= 1, f"{name}: more than one output option"


@pytest.mark.parametrize("name,parser", PARSERS, ids=[n for n, _ in PARSERS])
def test_retired_spellings_and_positionals_are_gone(name, parser):
    for a in _options(parser):
        assert not RETIRED & set(a.option_strings), f"{name}: retired spelling {a.option_strings}"
        assert a.option_strings, f"{name}: positional argument {a.dest!r} (use an option)"
        if "images" in a.dest or a.dest == "calib":
            assert a.metavar == "SPEC", f"{name}: {a.option_strings} should take an image SPEC"


# Numeric options validated before any work (issue 17): every int/float option of `dgfpga`
# uses options.number with a declared range. dgfpga-host's --timeout is the documented
# exception: the device layer validates it (finite, in (0, 86400]) with its own message.
NUMERIC_EXEMPT = {("dgfpga-host bench", "--timeout")}


def _numeric(parser):
    return [a for a in _options(parser)
            if a.type in (int, float) or hasattr(a.type, "dgfpga_range")]


@pytest.mark.parametrize("name,parser", PARSERS, ids=[n for n, _ in PARSERS])
def test_numeric_options_declare_a_range(name, parser):
    loose = [a.option_strings[0] for a in _numeric(parser)
             if not hasattr(a.type, "dgfpga_range")
             and (name, a.option_strings[0]) not in NUMERIC_EXEMPT]
    assert not loose, f"{name}: numeric options without options.number: {loose}"


@pytest.mark.parametrize("name,parser", PARSERS, ids=[n for n, _ in PARSERS])
def test_numeric_options_refuse_non_finite_and_out_of_range(name, parser):
    for a in _numeric(parser):
        if not hasattr(a.type, "dgfpga_range"):
            continue
        kind, lo, hi, lo_open = a.type.dgfpga_range
        bad = ["nan", "inf", "x"] if kind is float else ["1.5", "x"]
        if lo is not None:
            bad.append(str(lo) if lo_open else str(lo - 1))
        if hi is not None:
            bad.append(str(hi + 1))
        for text in bad:
            with pytest.raises(argparse.ArgumentTypeError):
                a.type(text)
        if lo is not None and not lo_open:
            assert a.type(str(lo)) == lo


def test_a_bad_number_is_a_usage_error_before_any_work(capsys):
    from dgfpga.cli.main import main
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--seed", "-5"])
    assert exc.value.code == 2
    assert "argument --seed: -5 must be >= 0" in capsys.readouterr().err
