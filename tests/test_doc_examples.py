"""The README's and the guides' shell examples still run.

Every ``$ graphrec ...`` line in a fenced block of README.md and docs/*.md is run, in the order
the page gives, in a folder that holds what the demo writes (``graphrec-sample/``: features,
graph and the K = 10 run), so each page is followed as a reader would follow it. An example
whose shown output has an ``error:`` line must fail with that error; every other example must
succeed. The ASINs a shown output names must exist in the sample, so a page cannot quote
products of an older sample. A block that cannot run here is preceded by
``<!-- example: skip (the reason) -->``; a ``$`` line that is not a graphrec command (or a
small shell step such as ``cp``) must sit in such a block, so nothing is left out silently.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphrec.cli import app

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP = re.compile(r"<!--\s*example:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->")
SHELL_STEPS = {"cp", "cat", "ls", "echo", "mkdir", "printf"}
ASIN = re.compile(r"\bB0[0-9A-Z]{8}\b")
DEVELOPER_PATHS = re.compile(r"(/work/|/root/|/home/\w+/|/Users/\w+/|C:\\\\Users)")


@dataclass
class Example:
    page: Path
    line: int
    command: str
    shown: list[str] = field(default_factory=list)
    skip: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _blocks(page: Path):
    """(first line number, lines, skip reason) of each fenced block of ``page``."""
    lines = page.read_text(encoding="utf-8").splitlines()
    block, start, reason, previous = None, 0, None, ""
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            if block is None:
                match = SKIP.search(previous)
                block, start, reason = [], number + 1, match and match["reason"]
            else:
                yield start, block, reason
                block = None
        elif block is not None:
            block.append(line)
        if line.strip():
            previous = line
    assert block is None, f"{page}: a fenced block is not closed"


def collect(page: Path) -> list[Example]:
    examples: list[Example] = []
    for start, lines, reason in _blocks(page):
        current = None
        for offset, line in enumerate(lines):
            if line.startswith("$ "):
                current = Example(page, start + offset, line[2:].strip(), skip=reason)
                examples.append(current)
            elif current is not None and current.command.endswith("\\"):
                current.command = current.command[:-1] + " " + line.strip()
            elif current is not None:
                current.shown.append(line)
    return examples


EXAMPLES = [example for page in PAGES for example in collect(page)]


def _runnable(example: Example) -> bool:
    words = shlex.split(example.command, comments=True)
    return bool(words) and (words[0] in ("graphrec", "curl") or words[0] in SHELL_STEPS or words[:3] == ["python", "-m", "graphrec.datasets.synthetic"])


def test_every_example_runs_or_says_why_not():
    unexplained = [f"{e.where}: $ {e.command}" for e in EXAMPLES if e.skip is None and not _runnable(e)]
    assert not unexplained, "examples that are neither graphrec commands nor in a skip block:\n" + "\n".join(unexplained)
    assert sum(e.skip is None for e in EXAMPLES) >= 15  # the check must keep covering the guides


def test_no_developer_paths_in_docs():
    found = [f"{page.relative_to(ROOT)}:{number}: {line.strip()}" for page in PAGES
             for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1) if DEVELOPER_PATHS.search(line)]
    assert not found, "paths of a developer's machine in the docs:\n" + "\n".join(found)


# An ASIN and the title shown beside it: a table cell, a CSV field, a JSON record, a DataFrame row.
TITLE_BESIDE_ASIN = [
    re.compile(r"│\s*(B0[0-9A-Z]{8})\s*│\s*([A-Z][^│]*?)\s*│"),
    re.compile(r"(B0[0-9A-Z]{8}),([A-Z][^,]*),"),
    re.compile(r'"asin": "(B0[0-9A-Z]{8})",\s*"title": "([^"]*)"'),
    re.compile(r"(B0[0-9A-Z]{8})\s{2,}([A-Z]\S*(?: \S+)*?)\s{2,}"),
]


def test_titles_shown_beside_sample_asins_are_the_samples():
    """A page quoting a sample product shows its current title (a wrapped table cell: its start)."""
    from graphrec.io import MetadataReader
    from graphrec.sample import SAMPLE_META

    titles = {record.asin: record.title for record in MetadataReader(SAMPLE_META)}
    wrong = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for pattern in TITLE_BESIDE_ASIN:
            for match in pattern.finditer(text):
                asin, shown = match[1], " ".join(match[2].split())
                if asin in titles and not titles[asin].startswith(shown):
                    wrong.append(f"{page.relative_to(ROOT)}: {asin} shown as {shown!r}, the sample calls it {titles[asin]!r}")
    assert not wrong, "\n".join(wrong)


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory) -> Path:
    """A folder holding the demo's outputs, made with the demo's own commands."""
    from graphrec.demo import demo_steps

    folder = tmp_path_factory.mktemp("demo")
    runner = CliRunner()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        for args in demo_steps("random", query=None)[:-1]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = runner.invoke(app, [*args, "--quiet"] if args[0] == "extract-features" else args)
            assert result.exit_code == 0, f"graphrec {' '.join(args)} failed:\n{result.output}"
    finally:
        os.chdir(cwd)
    return folder


def _sample_asins(folder: Path) -> set[str]:
    from graphrec.graph import load_graph

    return {str(asin) for asin in load_graph(folder / "graphrec-sample" / "graph").asins}


def _shown_error(example: Example) -> re.Pattern | None:
    """The shown ``error:`` line as a pattern (``...`` matches anything), or None."""
    for line in example.shown:
        if line.startswith("error:"):
            parts = re.split(r"\.\.\.|…", " ".join(line.split()))
            return re.compile(".*".join(re.escape(part) for part in parts))
    return None


def _curl(words: list[str], folder: Path) -> tuple[int, str]:
    """``curl [-i] [-F field=@file] URL`` against the sample run's app, in-process: the HTTP
    status and the body."""
    from fastapi.testclient import TestClient

    from graphrec.serve import Catalogue, create_app

    url = next(word for word in words if word.startswith("http://"))
    path = url.split("://", 1)[1].split("/", 1)[1]
    client = TestClient(create_app(Catalogue.load(folder / "graphrec-sample" / "runs" / "mahalanobis-k10")), raise_server_exceptions=False)
    uploads = [word for word in words if "=@" in word]
    if uploads:
        name, file = uploads[0].split("=@", 1)
        with open(folder / file, "rb") as handle:
            response = client.post("/" + path, files={name: (Path(file).name, handle.read())})
    else:
        response = client.get("/" + path)
    return response.status_code, response.text


def _shown_status(example: Example) -> int:
    """The HTTP status a curl example shows: ``HTTP/1.1 404`` in its output, ``# HTTP 422`` after it, else 200."""
    for text in [*example.shown, example.command.split("#", 1)[-1] if "#" in example.command else ""]:
        match = re.search(r"HTTP(?:/1\.1)? (\d{3})", text)
        if match:
            return int(match[1])
    return 200


def _check_curl(example: Example, folder: Path, known: set[str]) -> str | None:
    status, body = _curl(shlex.split(example.command, comments=True), folder)
    shown = "\n".join(example.shown)
    if status != _shown_status(example):
        return f"HTTP {status} instead of {_shown_status(example)}: {body[:300]}"
    detail = re.search(r'"detail":\s*"([^"]*)"', shown)
    if detail and detail[1] not in body:
        return f"the error now reads {body[:300]}"
    stale = sorted(set(ASIN.findall(shown)) - known) if status == 200 else []
    return f"shows ASINs that are not in the sample: {', '.join(stale)}" if stale else None


def _run(example: Example, folder: Path) -> tuple[int, str]:
    words = shlex.split(example.command, comments=True)
    if words[0] == "python":
        done = subprocess.run([sys.executable, *words[1:]], cwd=folder, capture_output=True, text=True)
        return done.returncode, done.stdout + done.stderr
    if words[0] == "cat" and len(words) == 2 and not (folder / words[1]).exists():
        (folder / words[1]).write_text("\n".join(example.shown) + "\n")  # a file the page shows is one the reader writes
    if words[0] != "graphrec":
        done = subprocess.run(example.command, shell=True, cwd=folder, capture_output=True, text=True)
        return done.returncode, done.stdout + done.stderr
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = CliRunner().invoke(app, words[1:])
    finally:
        os.chdir(cwd)
    return result.exit_code, result.output


PAGES_WITH_EXAMPLES = sorted({e.page for e in EXAMPLES if e.skip is None}, key=str)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_examples_run(page, demo_folder, tmp_path):
    folder = tmp_path / "reader"
    shutil.copytree(demo_folder, folder, symlinks=True)
    (folder / "graphrec").symlink_to(ROOT / "graphrec", target_is_directory=True)  # paths such as graphrec/datasets/sample/images/
    shutil.copy(ROOT / "README.md", folder / "README.md")
    known = _sample_asins(folder)
    problems = []
    for example in (e for e in EXAMPLES if e.page == page and e.skip is None):
        if example.command.startswith("curl"):
            problem = _check_curl(example, folder, known)
            problems += [f"{example.where}: $ {example.command}\n  {problem}"] if problem else []
            continue
        code, output = _run(example, folder)
        error = _shown_error(example)
        if error is not None:
            got = " ".join(" ".join(line.split()) for line in output.splitlines() if line.startswith("error:"))
            if code == 0 or not error.search(got):
                problems.append(f"{example.where}: $ {example.command}\n  shows: {error.pattern}\n  gives (exit {code}): {got or output[-500:]}")
        elif code != 0:
            problems.append(f"{example.where}: $ {example.command}\n  exit {code}: {output[-800:]}")
        elif example.command.startswith("graphrec"):
            stale = sorted(set(ASIN.findall("\n".join(example.shown))) - known)
            if stale:
                problems.append(f"{example.where}: $ {example.command}\n  shows ASINs that are not in the sample: {', '.join(stale)}")
    assert not problems, "\n".join(problems)
