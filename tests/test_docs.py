"""The docs name real commands, real flags and real files.

Every `dgfpga ...` / `dgfpga-host ...` command line written in README.md, docs/*.md,
hls/README.md or models/MODEL_CARD.md (in inline backticks or in a code block) must name an existing subcommand, and every option it uses must be
an option of that subcommand in the real argparse parsers (the commands are parsed, never run).
Every path the docs mention (in code) under dgfpga/, host/, sim/, hls/, tests/, models/ must exist in the checkout, and every dotted Python name (`dgfpga.x.y`, `dgfpga_host.x`,
`dgfpga_models.x`) they mention must be a real module or attribute.
"""
from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
# Pages whose command lines are checked too (their paths hold placeholders such as X.pth.tar).
COMMAND_PAGES = PAGES + [ROOT / "hls" / "README.md", ROOT / "models" / "MODEL_CARD.md"]

_PROG = re.compile(r"(?:^|[\s`(])(?:\S*/)?(dgfpga-host|dgfpga)(?=\s)")
_FENCE = re.compile(r"^\s*```")


def _snippets(text: str):
    """(line number, text) of every code-block line and every inline `code` span.

    Inline spans are found per paragraph, so a span broken over two lines is still one span.
    """
    in_block = False
    lines = text.splitlines()
    para: list[tuple[int, str]] = []

    def flush():
        joined = "\n".join(t for _, t in para)
        for m in re.finditer(r"`([^`]+)`", joined):
            yield para[0][0] + joined.count("\n", 0, m.start()), m.group(1).replace("\n", " ")
        para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            yield from flush()
            in_block = not in_block
        elif in_block:
            start = i
            # join shell continuation lines
            while line.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line.rstrip()[:-1] + " " + lines[i]
            yield start + 1, line
        elif line.strip():
            para.append((i + 1, line))
        else:
            yield from flush()
        i += 1
    yield from flush()


def _commands(text: str):
    """(line number, program, argv) of every dgfpga / dgfpga-host command line in `text`."""
    for lineno, snip in _snippets(text):
        snip = snip.split(" #")[0]                       # trailing shell comment
        for part in re.split(r"&&|\|\||;|\|", snip):     # one command per shell segment
            m = _PROG.search(" " + part + " ")
            if not m:
                continue
            rest = (" " + part + " ")[m.end():]
            try:
                argv = shlex.split(rest)
            except ValueError:
                argv = rest.split()
            yield lineno, m.group(1), argv


def _parsers():
    from dgfpga.cli.main import build_parser
    from dgfpga_host.cli import build_parser as host_parser
    return {"dgfpga": build_parser(), "dgfpga-host": host_parser()}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _check(prog_parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Problems with one command line (empty when it names a real subcommand and real flags)."""
    top_opts = set(prog_parser._option_string_actions)
    subs = _subparsers(prog_parser)
    words = [w for w in argv if w not in top_opts]
    if not words or words[0] in ("-h", "--help", "--version"):
        return []
    sub = words[0]
    if sub.startswith("-"):
        return [f"unknown top-level option {sub!r}"]
    if sub not in subs:
        # prose such as "dgfpga is ..." or a placeholder like "dgfpga <command>" is no command
        if re.fullmatch(r"[a-z][a-z0-9_-]*", sub) and sub not in _PROSE_WORDS:
            return [f"unknown subcommand {sub!r}"]
        return []
    opts = set(subs[sub]._option_string_actions)
    actions = _subparsers(subs[sub])             # a command with actions: dgfpga ci init
    if actions and len(words) > 1 and words[1] in actions:
        opts |= set(actions[words[1]]._option_string_actions)
    bad = []
    for w in words[1:]:
        w = w.strip("[]()|,")                             # [--opt] in a usage line
        if re.fullmatch(r"--?[A-Za-z][A-Za-z0-9-]*(=.*)?", w):
            flag = w.split("=", 1)[0]
            if flag not in opts:
                bad.append(f"{sub}: unknown option {flag!r}")
    return bad


# Words that may follow the program name in running prose (not commands).
_PROSE_WORDS = {"is", "and", "or", "the", "itself", "command", "commands", "cli", "does",
                "reads", "writes", "runs", "has", "can", "uses", "needs", "package",
                "subcommand", "subcommands", "then", "also", "only", "on", "in", "with",
                "entry", "wheel", "install", "installs", "itself", "tool", "prints"}


def _all_commands():
    out = []
    for page in COMMAND_PAGES:
        for lineno, prog, argv in _commands(page.read_text()):
            out.append((f"{page.relative_to(ROOT)}:{lineno}", prog, argv))
    return out


def test_docs_mention_commands():
    """The extractor finds the command lines (a broken extractor must not pass silently)."""
    cmds = _all_commands()
    progs = {p for _, p, _ in cmds}
    assert len(cmds) >= 30 and progs == {"dgfpga", "dgfpga-host"}, (len(cmds), progs)


def test_doc_command_lines_parse():
    parsers = _parsers()
    problems = []
    for where, prog, argv in _all_commands():
        for p in _check(parsers[prog], argv):
            problems.append(f"{where}: `{prog} {' '.join(argv)}`: {p}")
    assert not problems, "\n".join(problems)


def test_checker_rejects_a_wrong_flag():
    """The checker itself: a made-up flag or subcommand is reported, real ones are not."""
    parsers = _parsers()
    text = "```\ndgfpga demo --no-such-flag\ndgfpga frobnicate --out x\n```\n`dgfpga demo --out x`"
    found = [_check(parsers[p], a) for _, p, a in _commands(text)]
    assert found[0] and found[1] and not found[2], found


_PATH = re.compile(r"(?<![\w./-])((?:dgfpga|host|sim|hls|tests|models)/[\w./{}<>*,-]*[\w}>*])")


def _doc_paths():
    for page in PAGES:
        for lineno, snip in _snippets(page.read_text()):   # code, not prose ("host/gate time")
            for m in _PATH.finditer(snip):
                yield f"{page.relative_to(ROOT)}:{lineno}", m.group(1)


def _expand(path: str) -> list[str]:
    """`a/{x,y}.py` -> a/x.py, a/y.py; `a.h/.cpp` -> a.h, a.cpp."""
    m = re.search(r"\{([^}]*)\}", path)
    if m:
        return [q for alt in m.group(1).split(",")
                for q in _expand(path[:m.start()] + alt + path[m.end():])]
    m = re.fullmatch(r"(.*)\.(\w+)/\.(\w+)", path)
    if m:
        return [f"{m.group(1)}.{m.group(2)}", f"{m.group(1)}.{m.group(3)}"]
    return [path]


def test_doc_paths_exist():
    missing = []
    n = 0
    for where, raw in _doc_paths():
        if raw.startswith("dgfpga/hw/"):          # the installed copy of hls/ and sim/
            continue
        for path in _expand(raw):
            if "<" in path:                       # a placeholder such as test_<module>.py
                continue
            n += 1
            if "*" in path:
                if not list(ROOT.glob(path)):
                    missing.append(f"{where}: {raw}")
            elif not (ROOT / path).exists():
                missing.append(f"{where}: {raw}")
    assert n >= 30, n
    assert not missing, "paths named in docs that do not exist:\n" + "\n".join(missing)


@pytest.mark.parametrize("raw, expected", [
    ("sim/tb/test_dg_{a,b}.py", ["sim/tb/test_dg_a.py", "sim/tb/test_dg_b.py"]),
    ("hls/src/dg_engine.h/.cpp", ["hls/src/dg_engine.h", "hls/src/dg_engine.cpp"]),
])
def test_expand(raw, expected):
    assert _expand(raw) == expected


_DOTTED = re.compile(r"(?<![\w/.-])((?:dgfpga|dgfpga_host|dgfpga_models)(?:\.\w+)+)")
# dotted words that are file names or an IP vendor, not Python names
_NOT_PYTHON = {"dgfpga.bit", "dgfpga.hwh", "dgfpga.org"}


def _resolves(name: str) -> bool:
    import importlib
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def test_doc_python_names_resolve():
    """Every `dgfpga.x.y` / `dgfpga_host.x` / `dgfpga_models.x` the docs name is a real module
    or attribute (the contract templates' prose included)."""
    pages = COMMAND_PAGES + sorted((ROOT / "dgfpga" / "contract" / "templates").glob("*.md.tmpl"))
    names: dict[str, str] = {}
    for page in pages:
        for lineno, line in enumerate(page.read_text().splitlines(), 1):
            for m in _DOTTED.finditer(line):
                names.setdefault(m.group(1), f"{page.relative_to(ROOT)}:{lineno}")
    assert len(names) >= 40, len(names)
    bad = [f"{where}: {n}" for n, where in sorted(names.items())
           if n not in _NOT_PYTHON and not _resolves(n)]
    assert not bad, "names in docs that are no module or attribute:\n" + "\n".join(bad)
