"""The commands the READMEs show work as shown.

Every command line in README.md's ``bash`` blocks is either run here with the installed ``itb``
(literally, or, where it has placeholders such as ``LOG.itblog``, as the real commands in
SUBSTITUTES), or listed in NOT_RUN with the reason (a pump link, the package index, minutes of
benchmark).  A README command in neither list is run literally, so a new command with a
placeholder fails here until it is given a substitute or a reason.  The commands run in a copy of
``sample_logs`` in a temporary folder (outputs land there, not in the repository) and in a time
zone far from Sydney and from UTC, so a command that only works in the author's zone fails.  A
check command with a verdict in its comment (``# verdict URGENT``) must give that verdict.

The README's Python example is pasted line by line into an interactive interpreter, as a reader
would, and must not write into the folder it runs in.  Every command in ``sample_logs/README.md``
runs in-process: each sample's check gives the verdict written beside it, with the procedure window
of the sample's ground truth.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT

from itb_device.cli import main

README = ROOT / "README.md"
SAMPLES_README = ROOT / "sample_logs" / "README.md"
ITB = Path(sys.executable).with_name("itb")
FAR_ZONE = "America/Los_Angeles"  # neither UTC nor Sydney: the machine's zone must not matter
VERDICT = re.compile(r"\b(OK|REVIEW|URGENT)\b")


def code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.S | re.M)


def commands(text: str) -> list[tuple[str, str]]:
    """(command, comment) for each command line of the ``bash`` blocks: continuation lines
    joined, whitespace collapsed, a trailing ``# comment`` split off."""
    out = []
    for block in code_blocks(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            m = re.search(r"(?:^|\s)#(?:\s|$)", line)
            command, comment = (line[: m.start()], line[m.end() :]) if m else (line, "")
            command = " ".join(command.split())
            if command:
                out.append((command, comment.strip()))
    return out


@dataclass(frozen=True)
class Run:
    """One run of a command: arguments after ``itb`` (or a full argv for python), the exit
    status it must give, and files it must write (relative to the working folder)."""

    args: tuple[str, ...]
    rc: int = 0
    writes: tuple[str, ...] = ()
    verdict: str | None = None
    phase: int = 1  # phase 2 runs after phase 1 (it reads what phase 1 wrote)


def itb(command: str, **kw) -> Run:
    return Run(tuple(shlex.split(command)), **kw)


# README commands with placeholders (or too big to run as written) -> the real runs standing in.
SUBSTITUTES: dict[str, tuple[Run, ...]] = {
    "itb check LOG.itblog --after mri|diathermy --end TIME [--start TIME] [--weight-kg KG] [--tz ZONE] "
    "[--json] [--report check.pdf|check.html] [--fail-on review|urgent]": (
        itb(
            "check sample_logs/mri_delayed_recovery.itblog --after mri --end '2026-03-11 02:00' "
            "--tz Australia/Sydney --weight-kg 35 --report check.pdf --fail-on urgent",
            rc=1,  # documented: --fail-on urgent and the verdict is URGENT
            writes=("check.pdf",),
            verdict="URGENT",
        ),
        itb(
            "check sample_logs/mri_prompt_recovery.itblog --after mri --start 2026-04-20T10:00Z "
            "--end 2026-04-20T10:45Z --tz Australia/Sydney --json --fail-on review",
            verdict="OK",
        ),
    ),
    "itb report LOG.itblog -o report.pdf": (
        itb("report sample_logs/titration_violation.itblog -o report.pdf", writes=("report.pdf",)),
    ),
    "itb decode LOG.itblog": (itb("decode sample_logs/corrupted_log.itblog"),),
    "itb decode LOG.itblog --events|--delivery|--status [--format table|csv|json|parquet] [-o FILE]": (
        # one form: each run costs a second of start-up; tests/test_cli_decode.py has the others
        itb(
            "decode sample_logs/normal_year.itblog --delivery --format parquet -o d.parquet",
            writes=("d.parquet",),
        ),
    ),
    "itb simulate SCENARIO.toml -o OUT.itblog [--truth OUT.truth.json] [--seed N]": (
        itb(
            "simulate sample_logs/scenarios/mri_delayed_recovery.toml -o out.itblog "
            "--truth out.truth.json --seed 3",
            writes=("out.itblog", "out.truth.json"),
        ),
    ),
    "itb score [sample_logs]": (itb("score sample_logs"),),
    # 1000 pumps take minutes: the same command on a small cohort
    "itb make-cohort 1000 -o cohort/ --workers 2": (
        itb("make-cohort 4 -o cohort/ --workers 2 --years 0.25", writes=("cohort",)),
    ),
    # the local engine on that cohort; `--engine dask --scheduler tcp://HOST:8786` needs a Dask
    # cluster on the network (tests/test_research_cohort.py runs the Dask engine on a local cluster)
    "itb cohort cohort/ -o results/ --workers 2 [--engine dask --scheduler tcp://HOST:8786]": (
        itb("cohort cohort/ -o results/ --workers 2", writes=("results",), phase=2),
    ),
}

# README commands not run here, with the reason.
NOT_RUN: dict[str, str] = {
    "bash scripts/demo": "installs the package with pip (the package index); its check and score run here",
    "bash scripts/test": "runs the whole test suite, this test included",
    "itb pump-sim --listen pty|tcp://127.0.0.1:PORT [--scenario FILE | --replay LOG] [--speed X] "
    "[--faults ...]": "serves a pump link until stopped; tests/test_wire_pump_sim.py runs it",
    "itb interrogate URL -o OUT.itblog [--full] [--cache DIR] [--capture FILE]": "needs a pump on a link "
    "(hardware or a served pump); tests/test_wire_end_to_end.py and tests/test_wire_incremental.py run it",
    "itb replay-capture FILE [-o OUT.itblog]": "needs a byte capture of a pump link: "
    "tests/test_wire_capture.py",
    "python benchmarks/decode.py": "benchmark: minutes and a 256 MiB log",
    "python benchmarks/simulate.py": "benchmark: minutes",
    "python benchmarks/wire.py": "benchmark: minutes",
    "python benchmarks/check.py": "benchmark: minutes",
    "python benchmarks/serve.py": "benchmark: a minute",
    "itb serve [--data DIR] [--port N] [--open]": "serves the ward app until stopped; tests/test_ward_app.py "
    "runs it",
    ".venv/bin/itb serve --open": "serves the ward app until stopped; tests/test_ward_app.py runs it",
    "python benchmarks/score.py": "benchmark: minutes",
    "python benchmarks/cohort.py": "benchmark: minutes",
}

README_COMMANDS = commands(README.read_text(encoding="utf-8"))


def plan(command: str, comment: str) -> tuple[Run, ...]:
    """The runs that stand for a README command (none when it is in NOT_RUN)."""
    if command in NOT_RUN:
        return ()
    if command in SUBSTITUTES:
        return SUBSTITUTES[command]
    words = shlex.split(command)
    if words[0] == "python":
        words[0] = sys.executable
    elif words[0] == "itb":
        words = words[1:]
    else:
        pytest.fail(f"README command {command!r}: neither itb nor python; add it to SUBSTITUTES or NOT_RUN")
    verdict = VERDICT.search(comment)
    return (Run(tuple(words), verdict=verdict[1] if verdict and words[0] == "check" else None),)


def argv(run: Run) -> list[str]:
    return list(run.args) if run.args[0] == sys.executable else [str(ITB), *run.args]


def execute(run: Run, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TZ": FAR_ZONE, "NO_COLOR": "1", "MPLCONFIGDIR": str(cwd / ".matplotlib")}
    return subprocess.run(argv(run), cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder with a copy of sample_logs, as the repository root has."""
    work = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "sample_logs", work / "sample_logs", ignore=shutil.ignore_patterns("README.md"))
    return work


@pytest.fixture(scope="module")
def results(workdir) -> dict[Run, subprocess.CompletedProcess]:
    """Every run of every README command, two at a time (the suite's time budget), phase by phase."""
    assert ITB.exists(), f"the itb command is not installed next to {sys.executable}"
    runs = list(dict.fromkeys(r for command, comment in README_COMMANDS for r in plan(command, comment)))
    done: dict[Run, subprocess.CompletedProcess] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for phase in sorted({r.phase for r in runs}):
            batch = [r for r in runs if r.phase == phase]
            done.update(zip(batch, pool.map(lambda r: execute(r, workdir), batch), strict=True))
    return done


def test_every_readme_command_is_run_or_listed():
    listed = {c for c, _ in README_COMMANDS}
    assert len(README_COMMANDS) >= 20, README_COMMANDS  # the blocks were found
    assert not set(SUBSTITUTES) & set(NOT_RUN)
    assert not (set(SUBSTITUTES) | set(NOT_RUN)) - listed, "entries for commands no longer in the README"
    for command, comment in README_COMMANDS:
        assert command in NOT_RUN or plan(command, comment), command


@pytest.mark.parametrize(
    ("command", "comment"),
    [pytest.param(c, m, id=c[:60]) for c, m in README_COMMANDS if c not in NOT_RUN],
)
def test_readme_command(results, workdir, command, comment):
    for run in plan(command, comment):
        p = results[run]
        shown = f"{shlex.join(argv(run))}\nexit {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
        assert p.returncode == run.rc, shown
        assert "Traceback" not in p.stderr, shown
        assert p.stdout.strip() or p.stderr.strip() or run.writes, shown  # silent only when writing
        for name in run.writes:
            path = workdir / name
            assert path.exists() and (path.is_dir() or path.stat().st_size > 0), shown
            magic = {".pdf": b"%PDF", ".parquet": b"PAR1", ".html": b"<!DOCTYPE html>"}.get(path.suffix)
            assert magic is None or path.read_bytes().startswith(magic), shown
        if run.verdict:
            if "--json" in run.args:
                assert json.loads(p.stdout)["verdict"] == run.verdict, shown
            else:
                assert f"VERDICT: {run.verdict}" in p.stdout, shown


def test_the_readme_check_example_names_a_sample_and_a_verdict():
    checks = [(c, m) for c, m in README_COMMANDS if c.startswith("itb check sample_logs/")]
    assert checks, "README.md shows no check on a real sample"
    for command, comment in checks:
        words = shlex.split(command)
        assert (ROOT / words[2]).is_file(), command
        assert "--tz" in words or all(w.endswith("Z") for w in words if re.match(r"\d{4}-\d\d-\d\d", w))
        assert VERDICT.search(comment), f"{command}: give the verdict it prints in a comment"


def test_the_quick_start_installs_what_the_commands_need():
    """`scripts/demo` installs the package without extras (`pip install -e .`), so what the README's
    commands need (PDF reports: matplotlib; Parquet: pyarrow) are runtime dependencies, each with a
    tested range; the test and lint tools are pinned exactly, so a release elsewhere cannot turn CI
    red overnight."""
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "pip install -q --disable-pip-version-check -e ." in (ROOT / "scripts" / "demo").read_text()
    runtime = {Requirement(r).name: Requirement(r).specifier for r in project["dependencies"]}
    assert {"matplotlib", "pyarrow"} <= set(runtime)
    for name, spec in runtime.items():
        operators = {s.operator for s in spec}
        assert ">=" in operators and "<" in operators, f"{name}{spec}: give a tested range"
    for requirement in map(Requirement, project["optional-dependencies"]["test"]):
        if requirement.name in {"pytest", "hypothesis", "ruff", "mypy", "pypdf"}:
            assert [s.operator for s in requirement.specifier] == ["=="], requirement


PASTE = r"""
import code, sys
class Console(code.InteractiveConsole):
    failed = False
    def showtraceback(self):
        Console.failed = True
        super().showtraceback()
    def showsyntaxerror(self, filename=None, **kwargs):
        Console.failed = True
        super().showsyntaxerror(filename)
console = Console()
more = False
for line in sys.stdin.read().splitlines():
    more = console.push(line)
if more:
    console.push("")
print("PASTED", "failed" if Console.failed else "ok")
"""


def test_the_python_example_pasted_into_python(workdir):
    (block,) = code_blocks(README.read_text(encoding="utf-8"), "python")
    assert "tempfile" in block
    before = sorted(p.name for p in workdir.iterdir())
    p = subprocess.run(
        [sys.executable, "-c", PASTE],
        input=block,
        cwd=workdir,
        env={**os.environ, "TZ": FAR_ZONE},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0 and p.stdout.rstrip().endswith("PASTED ok"), p.stdout + p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    assert "week.itblog" in p.stdout  # the saved log's path is shown...
    assert not (workdir / "week.itblog").exists()  # ...and it is not in the folder the reader is in
    new = set(p.name for p in workdir.iterdir()) - set(before)
    assert not {n for n in new if n.endswith(".itblog")}, new


# ---------------------------------------------------------------------------------------------
# sample_logs/README.md


SAMPLE_COMMANDS = commands(SAMPLES_README.read_text(encoding="utf-8"))


def test_every_sample_has_a_command():
    samples = sorted(p.stem for p in (ROOT / "sample_logs").glob("*.itblog"))
    named = [re.search(r"sample_logs/(\w+)\.itblog", c)[1] for c, _ in SAMPLE_COMMANDS]
    assert sorted(named) == samples
    for name in samples:
        truth = json.loads((ROOT / "sample_logs" / f"{name}.truth.json").read_text(encoding="utf-8"))
        (command, _comment) = next((c, m) for c, m in SAMPLE_COMMANDS if f"sample_logs/{name}.itblog" in c)
        if not truth["procedures"]:
            assert command.startswith("itb decode "), command
            continue
        (proc,) = truth["procedures"]
        words = shlex.split(command)
        assert words[:2] == ["itb", "check"], command
        assert words[words.index("--after") + 1] == proc["kind"]
        assert words[words.index("--start") + 1] == proc["start_utc"].replace(":00Z", "Z")
        assert words[words.index("--end") + 1] == proc["end_utc"].replace(":00Z", "Z")
        assert float(words[words.index("--weight-kg") + 1]) == truth["weight_kg"]
        row = f"| `{name}` | {proc['kind'].replace('mri', 'MRI')} "
        assert row in SAMPLES_README.read_text(encoding="utf-8"), name


@pytest.mark.parametrize(
    ("command", "comment"), SAMPLE_COMMANDS, ids=[c.split()[2] for c, _ in SAMPLE_COMMANDS]
)
def test_sample_readme_command(monkeypatch, capsys, command, comment):
    monkeypatch.chdir(ROOT)
    words = shlex.split(command)
    assert words[0] == "itb"
    rc = main(words[1:])
    out, err = capsys.readouterr()
    assert rc == 0, err
    if words[1] == "check":
        verdict = VERDICT.search(comment)
        assert verdict, f"{command}: give its verdict in a comment"
        assert f"VERDICT: {verdict[1]}" in out, out
        table = SAMPLES_README.read_text(encoding="utf-8")
        name = Path(words[2]).stem
        row = re.search(rf"^\| `{name}` \|.*\| (\w+) \|$", table, re.M)
        assert row and row[1] == verdict[1], f"{name}: the table and the command's comment disagree"
    else:
        assert words[2] in out
