"""A newcomer's first commands: the README's, checked so they cannot drift, and the mission's commands as a new
user types them, in an empty folder, offline: one line each, exit 2."""

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests._offline import run_in_empty_folder

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


@pytest.mark.parametrize("argv, needles", [
    # No flags: pretrained spaces default to torchvision's ImageNet weights, which cannot be had.
    (["-m", "search.run", "--space", "finetune"],
     ["ImageNet weights", "https://download.pytorch.org/models/resnet", "--weights PATH"]),
    # The default data folder, downloaded into when missing.
    (["-m", "search.run", "--space", "scratch"],
     ["could not download CIFAR-10", ".cache/resnet-hpo/cifar10", "--data PATH"]),
    (["-m", "search.run", "--space", "scratch", "--download"],
     ["could not download CIFAR-10", "--data PATH"]),
    (["-m", "model.train"], ["could not download CIFAR-10", "--data PATH"]),
])
@pytest.mark.slow
def test_offline_first_commands_say_what_to_pass_in_one_line(tmp_path, argv, needles):
    proc = run_in_empty_folder(tmp_path, *argv)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "empty").iterdir())  # nothing half-made is left behind


# --- The README's commands, at --help level: parsed as their programs would parse them; nothing installed or run ---


def readme_commands() -> dict[str, list[list[str]]]:
    """The ``./hpo`` commands of each bash block in the README, by the ``##`` section the block is in.

    A backslash continues a line; ``#`` starts a comment, as in the shell.
    """
    sections: dict[str, list[list[str]]] = {}
    heading, fence, line = None, None, ""
    for text in README.read_text().splitlines():
        if fence is None:
            if text.startswith("## "):
                heading = text[3:].strip()
            elif text.startswith("```"):
                fence = text[3:].strip()
            continue
        if text.startswith("```"):
            fence = None
            continue
        if fence != "bash":  # a Python block or a layout drawing: not shell, not split as shell
            continue
        line += text.rstrip()
        if line.endswith("\\"):
            line = line[:-1] + " "
            continue
        argv, line = shlex.split(line, comments=True), ""
        if argv[:1] == ["./hpo"]:
            sections.setdefault(heading, []).append(argv)
    return sections


COMMANDS = readme_commands()
QUICKSTART = COMMANDS.get("Quickstart", [])
FIRST_LOOK = COMMANDS.get("A first look on a laptop", [])


def test_the_readme_is_a_five_minute_read():
    text = README.read_text()
    assert len(text.splitlines()) < 300 and len(text.encode()) < 25_000, (len(text.splitlines()), len(text.encode()))


def test_the_quickstart_is_the_two_commands_and_ci_runs_its_test_command():
    assert [argv[:2] for argv in QUICKSTART] == [["./hpo", "search"], ["./hpo", "test"]], QUICKSTART
    assert len(FIRST_LOOK) == 1 and FIRST_LOOK[0][:2] == ["./hpo", "search"], FIRST_LOOK
    assert os.access(ROOT / "hpo", os.X_OK), "the README runs ./hpo: it must be executable"
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(rf"^{re.escape(shlex.join(QUICKSTART[1]))}( |$)", ci, re.M), "CI must run the README's test command"


def check_hpo_command(argv: list[str], capsys, markers: set[str]) -> None:
    """What ``./hpo`` would hand its program, parsed by that program's own parser (``--help`` only printed)."""
    cmd, args = argv[1], argv[2:]
    if cmd == "search":
        from model.sources import default_data_root
        from search.cli import config_from_args, get_args_parser

        if "--help" in args:
            with pytest.raises(SystemExit) as exit_:
                get_args_parser().parse_args(args)
            assert exit_.value.code == 0 and "--time-budget" in capsys.readouterr().out
            return
        config = config_from_args(get_args_parser().parse_args(args))  # every flag's value checked, as at start
        # No --data: the download folder, which must resolve without the network; a --data the README names exists.
        data = ROOT / config.data if config.data else default_data_root()
        assert data.is_absolute() and (config.data is None or data.exists()), data
    elif cmd == "test":
        # `-m EXPR`: every marker the expression names is declared, or pytest would select nothing.
        for i, arg in enumerate(args[:-1]):
            if arg == "-m":
                names = set(re.findall(r"[A-Za-z_]\w*", args[i + 1])) - {"not", "and", "or"}
                assert names <= markers, names
    elif cmd in ("report", "retrain"):
        from search.report import get_args_parser as report_parser
        from search.retrain import get_args_parser as retrain_parser

        (report_parser if cmd == "report" else retrain_parser)().parse_args(args)
    elif cmd == "python" and args[:2] == ["-m", "model.train"]:
        from model.train import config_from_args, get_args_parser

        config_from_args(get_args_parser().parse_args(args[2:]))
    else:
        assert cmd == "python", f"./hpo has no command {cmd!r}"


@pytest.mark.parametrize("argv", [argv for commands in COMMANDS.values() for argv in commands],
                         ids=lambda argv: " ".join(argv[1:])[:60])
def test_every_hpo_command_in_the_readme_parses(argv, capsys, pytestconfig):
    markers = {line.split(":")[0].strip() for line in pytestconfig.getini("markers")}
    check_hpo_command(argv, capsys, markers)


def test_hpo_help_prints_the_usage_and_installs_nothing(tmp_path):
    env = {**os.environ, "HPO_VENV": str(tmp_path / "venv")}
    for argv, code in ((["--help"], 0), (["-h"], 0), ([], 2), (["serach"], 2)):
        proc = subprocess.run(["bash", str(ROOT / "hpo"), *argv], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=30)
        assert proc.returncode == code, (argv, proc.stdout, proc.stderr)
        out = proc.stdout + proc.stderr
        assert ("usage: ./hpo" in out) if code == 0 or not argv else out.startswith("error:"), out
        for command in ("search", "test", "report", "retrain", "python"):
            assert command in out, (argv, out)
    assert not list(tmp_path.iterdir()), "./hpo --help must not create anything"


def heading_slugs(path: Path) -> set[str]:
    """The anchors GitHub gives a markdown file's headings: lower case, punctuation dropped, spaces as hyphens."""
    return {re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            for m in re.finditer(r"^#+\s+(.+)$", path.read_text(), re.M)}


def test_every_link_between_the_documents_reaches_its_file_and_heading():
    # The README's numbers link to the benchmark that measured them: a section moved or lost breaks the link.
    broken = []
    for doc in [README, ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for link in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"[a-z]+:", link):
                continue  # a URL: not ours to check offline
            path, _, anchor = link.partition("#")
            target = (doc.parent / path).resolve() if path else doc
            if not target.exists() or (anchor and target.suffix == ".md" and anchor not in heading_slugs(target)):
                broken.append(f"{doc.relative_to(ROOT)}: {link}")
    assert not broken, broken
