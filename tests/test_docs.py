"""The README and docs stay usable: short README, links that resolve, names and commands that are real."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from components import config
from components.names import (
    READER_SERVICE_ACCOUNT,
    READER_TOKEN_SECRET,
    reader_token_secret_name,
    remote_secret_name,
)
from offline import ROOT

DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
SHELL = ("", "bash", "sh", "console")


def shell_blocks(text: str) -> list[str]:
    """The contents of a document's shell code blocks (fences without a language, or bash/sh/console)."""
    return [body for lang, body in FENCE.findall(text) if lang in SHELL]


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def test_readme_is_short_enough_to_read() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_links_stay_in_the_repository_or_go_to_public_urls(doc: Path) -> None:
    broken = []
    for target in LINK.findall(doc.read_text()):
        if target.startswith(("https://", "http://", "#", "mailto:")):
            continue
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.is_relative_to(ROOT) or not path.exists():
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_commands_use_the_projects_interpreter_or_make(doc: Path) -> None:
    """One convention: `make <target>` or `venv/bin/python -m ...`; a bare `python -m` (but venv) is wrong."""
    wrong = [line.strip() for block in shell_blocks(doc.read_text()) for line in block.splitlines()
             if re.search(r"(?<![/\w])python3? -m (?!venv\b)", line)]
    assert wrong == []


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_make_targets_named_in_docs_exist(doc: Path) -> None:
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))
    text = doc.read_text()
    commands = "\n".join(shell_blocks(text) + re.findall(r"`([^`\n]+)`", text))
    named = set(re.findall(r"(?:^|\s|`)make ([a-z][a-z-]*)", commands, re.M))
    assert named - targets == set()


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_istio_object_names_in_docs_are_the_programs(doc: Path) -> None:
    text = doc.read_text()
    accounts = set(re.findall(r"istio-reader-service-account[-\w<>+]*", text))
    # The account, its token Secret, and a rotated token's `-g<n>` (names.reader_token_secret_name).
    rotated = re.escape(reader_token_secret_name(1)).replace("1", r"(\d+|<n>|<n\+1>)?")
    assert {a for a in accounts if a not in (READER_SERVICE_ACCOUNT, READER_TOKEN_SECRET)
            and not re.fullmatch(rotated, a)} == set()
    prefix = remote_secret_name("")
    for name in re.findall(r"istio-remote-secret-[\w<>]*", text):
        assert name.startswith(prefix), name


def test_every_top_level_config_key_is_documented() -> None:
    reference = (ROOT / "docs" / "config.md").read_text()
    missing = [k for k in config.TOP_LEVEL_KEYS if f"`{k}" not in reference]
    assert missing == []
