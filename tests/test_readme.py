"""README.md's code blocks run as tests, so that what a reader copies works.

How blocks run:

- Blocks are grouped by the heading they follow (any level): a *section*. Each section runs
  in a fresh temporary directory, in README order, with ``migcodec`` on ``PATH`` (the
  console script installed next to this Python), the repository first on ``PYTHONPATH``,
  its own ``XDG_CACHE_HOME``, and the repository's ``benchmarks`` and ``examples`` linked in
  (``corpus`` copied, since ``evaluate`` caches tables beside traces).
- ``python`` blocks of a section run in one fresh interpreter, one namespace, in order: a
  section's code is complete on its own, as a reader would paste it.
- ``sh`` blocks run line by line in one bash process per section (shared with nothing
  else); a line ending in ``\\`` continues on the next, comment lines are skipped. Every
  line must exit with status 0 within :data:`LINE_TIMEOUT_S`.
- ``toml`` blocks are parsed.

A block that cannot run here (it needs root and a package install, or takes minutes) is
marked on the line before it with ``<!-- readme-test: skip: REASON -->``: it is reported
as a skipped test with that reason. Any other block must run; a block in another language
fails the test until it is marked.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from migcodec.cli import build_parser
from tests.plugin_dist import REPO

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: toml blocks are not checked
    tomllib = None

README = REPO / "README.md"
#: seconds one sh line or one python block may take
LINE_TIMEOUT_S = 120.0
#: blocks marked skip must stay rare
MAX_SKIPPED = 6
_MARKER = re.compile(r"<!--\s*readme-test:\s*(.*?)\s*-->")
_FENCE = re.compile(r"^(\s*)```+\s*([\w+-]*)\s*$")
_DONE = "@@readme-test-done@@"


@dataclass
class Block:
    language: str
    code: str
    line: int  # 1-based line of the opening fence
    section: str
    skip: str | None = None  # the reason given by a marker


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")


def parse_readme(text: str) -> list[Block]:
    """Every fenced block, with its section and marker; malformed markers raise."""
    blocks: list[Block] = []
    lines = text.splitlines()
    section, marker, i = "(top)", None, 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if line.startswith("#") and not fence:
            section = line.lstrip("#").strip()
        found = _MARKER.search(line)
        if found:
            skip = re.fullmatch(r"skip:\s*(\S.*)", found[1])
            if not skip:
                raise ValueError(
                    f"README.md line {i + 1}: write <!-- readme-test: skip: REASON -->, "
                    f"not {found[0]!r}"
                )
            if marker is not None:
                raise ValueError(
                    f"README.md line {marker[0] + 1}: a marker with no code block after it"
                )
            marker = (i, skip[1])
        if fence:
            indent, language = fence[1], fence[2]
            end = next(
                (j for j in range(i + 1, len(lines)) if lines[j].strip().startswith("```")),
                None,
            )
            if end is None:
                raise ValueError(f"README.md line {i + 1}: a code block that never closes")
            code = "\n".join(
                body[len(indent) :] if body.startswith(indent) else body
                for body in lines[i + 1 : end]
            )
            if marker is not None and marker[0] != i - 1:
                raise ValueError(
                    f"README.md line {marker[0] + 1}: a readme-test marker must be on the line "
                    "right before a code block"
                )
            skip = marker[1] if marker is not None else None
            blocks.append(Block(language or "(none)", code + "\n", i + 1, section, skip))
            marker = None
            i = end + 1
            continue
        i += 1
    if marker is not None:
        raise ValueError(f"README.md line {marker[0] + 1}: a marker with no code block after it")
    return blocks


def sections(blocks: list[Block]) -> list[Section]:
    by_title: dict[str, Section] = {}
    for block in blocks:
        by_title.setdefault(block.section, Section(block.section)).blocks.append(block)
    return list(by_title.values())


BLOCKS = parse_readme(README.read_text(encoding="utf-8"))
RUNNABLE = [s for s in sections([b for b in BLOCKS if b.skip is None]) if s.blocks]
SKIPPED = [b for b in BLOCKS if b.skip is not None]


# -- interpreters: one bash and one python per section, fed one unit at a time -------------
class Interpreter:
    """A long-lived interpreter fed one unit of code at a time on stdin; each unit ends
    with a line carrying :data:`_DONE` and its status, read back with a timeout."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its background jobs are ours to end
        )
        self.lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def run(self, unit: str, what: str) -> None:
        """Send ``unit``; fail the test with its output unless it reports status 0."""
        assert self.process.stdin is not None
        self.process.stdin.write(unit)
        self.process.stdin.flush()
        output: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=LINE_TIMEOUT_S)
            except queue.Empty:
                self.close()
                pytest.fail(f"{what}: no result within {LINE_TIMEOUT_S:g} s\n{''.join(output)}")
            if line is None:
                pytest.fail(f"{what}: the interpreter exited\n{''.join(output)}")
            if _DONE in line:
                status = line.split(_DONE, 1)[1].strip()
                break
            output.append(line)
        if status != "0":
            pytest.fail(f"{what}: exit status {status}\n{''.join(output)}")

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # the interpreter and its jobs
        self.process.wait(timeout=30)


_PYTHON_DRIVER = f"""
import sys, traceback
namespace = {{"__name__": "__main__"}}
while True:
    header = sys.stdin.readline()
    if not header:
        break
    code = sys.stdin.read(int(header))
    status = 0
    try:
        exec(compile(code, "<README block>", "exec"), namespace)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    print("\\n{_DONE}", status, flush=True)
"""


def _shell_lines(code: str) -> Iterator[tuple[int, str]]:
    """``(line offset, command)``: continuation lines joined, blank and comment lines left out."""
    pending, start = "", 0
    for offset, line in enumerate(code.splitlines()):
        if not pending:
            start = offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        command = pending + line
        pending = ""
        if command.strip() and not command.lstrip().startswith("#"):
            yield start, command


def _environment(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    scripts = Path(sys.executable).parent  # the `migcodec` console script and `python`
    env["PATH"] = f"{scripts}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO)
    env["XDG_CACHE_HOME"] = str(home / ".cache")
    env["MPLBACKEND"] = "Agg"
    env.pop("PYTHONSTARTUP", None)
    return env


def _workspace(tmp_path: Path, section: Section) -> Path:
    """The section's working directory, with what README commands name from a checkout."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("benchmarks", "examples"):
        (work / name).symlink_to(REPO / name, target_is_directory=True)
    if any("corpus/" in block.code for block in section.blocks):
        shutil.copytree(REPO / "corpus" / "traces", work / "corpus" / "traces")
    return work


@pytest.mark.parametrize("section", RUNNABLE, ids=[s.slug for s in RUNNABLE])
def test_readme_section_runs(section: Section, tmp_path: Path) -> None:
    work = _workspace(tmp_path, section)
    env = _environment(tmp_path)
    interpreters: dict[str, Interpreter] = {}
    try:
        for block in section.blocks:
            where = f"README.md line {block.line} ({block.language} block in {section.title!r})"
            if block.language == "toml":
                if tomllib is not None:
                    tomllib.loads(block.code)
            elif block.language == "python":
                if "python" not in interpreters:
                    argv = [sys.executable, "-u", "-c", _PYTHON_DRIVER]
                    interpreters["python"] = Interpreter(argv, work, env)
                interpreters["python"].run(f"{len(block.code)}\n{block.code}", where)
            elif block.language == "sh":
                if "sh" not in interpreters:
                    interpreters["sh"] = Interpreter(["bash", "--noprofile", "--norc"], work, env)
                for offset, command in _shell_lines(block.code):
                    unit = f"{{\n{command}\n}} < /dev/null\nstatus=$?; echo; echo {_DONE} $status\n"
                    line = block.line + 1 + offset
                    interpreters["sh"].run(unit, f"README.md line {line}: {command.strip()}")
            else:
                pytest.fail(
                    f"{where}: a {block.language} block cannot run; mark it "
                    "<!-- readme-test: skip: REASON --> or make it python, sh or toml"
                )
    finally:
        for interpreter in interpreters.values():
            interpreter.close()


@pytest.mark.parametrize("block", SKIPPED, ids=[f"line-{b.line}" for b in SKIPPED])
def test_readme_block_marked_skip(block: Block) -> None:
    pytest.skip(f"README.md line {block.line} ({block.section}): {block.skip}")


def test_skipped_blocks_are_rare_and_give_a_reason() -> None:
    assert len(SKIPPED) <= MAX_SKIPPED, [b.line for b in SKIPPED]
    assert all(b.skip and len(b.skip) > 10 for b in SKIPPED)
    assert len(RUNNABLE) >= 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- readme-test: run -->\n```sh\nls\n```\n", "write <!-- readme-test: skip: REASON"),
        ("<!-- readme-test: skip: slow -->\n\ntext\n```sh\nls\n```\n", "right before"),
        ("```sh\nls\n", "never closes"),
        ("text\n<!-- readme-test: skip: slow -->\n", "no code block after it"),
    ],
)
def test_malformed_markers_are_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_readme(text)


def test_markers_sections_and_continuations_are_read() -> None:
    text = (
        "# A\n```python\nx = 1\n```\n## B\n<!-- readme-test: skip: needs root and apt-get -->\n"
        "```sh\napt-get install x\n```\n```sh\necho a \\\n  b   # joined\n# a comment\n\n```\n"
    )
    first, skipped, shell = parse_readme(text)
    assert (first.section, first.language, first.skip) == ("A", "python", None)
    assert (skipped.section, skipped.skip) == ("B", "needs root and apt-get")
    assert list(_shell_lines(shell.code)) == [(0, "echo a    b   # joined")]


def test_first_block_is_what_ci_runs() -> None:
    """``.ci/run`` reads the first ``sh`` block as "<set-up> && <main job>" then the tests.

    It installs with the set-up, runs the main job with ``--pages 512`` appended and then the
    test command, so a first block of any other shape fails CI before a test runs.
    """
    script = (
        "setup_line=\"$(sed -n '/^```sh$/{n;p;q}' README.md)\"\n"
        "test_line=\"$(sed -n '/^```sh$/{n;n;p;q}' README.md)\"\n"
        'printf "%s\\n" "${setup_line%% && *}" "${setup_line#* && }" "$test_line"\n'
    )
    ci = (REPO / ".ci" / "run").read_text()
    assert "setup_line=\"$(sed -n '/^```sh$/{n;p;q}' README.md)\"" in ci
    assert 'main_cmd="${setup_line#* && }"' in ci and '"$main_cmd --pages 512"' in ci
    out = subprocess.run(
        ["bash", "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    setup_cmd, main_cmd, test_cmd = out.splitlines()
    assert setup_cmd.startswith("pip install -e ") and "&&" not in setup_cmd
    assert main_cmd.startswith("migcodec ") and main_cmd != setup_cmd
    assert test_cmd == "python -m pytest"
    args = build_parser().parse_args([*shlex.split(main_cmd)[1:], "--pages", "512"])
    assert args.pages == 512
