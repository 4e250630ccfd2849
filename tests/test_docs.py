"""The README and docs stay usable: short README, links that resolve, names and commands that are real."""

from __future__ import annotations

import ast
import io
import re
import tokenize
import tomllib
import unicodedata
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
from tests.fakes.project import DOCS, shell_blocks

LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def test_readme_is_short_enough_to_read() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


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


# --- References: every repo path, dotted module, relative link and anchor the docs and the code's
# comments and docstrings name exists. ---------------------------------------------------------

TOP = ("components", "offline", "tools", "bench", "tests", "policy", "docs", ".github", ".ci")
PACKAGES = ("components", "offline", "tools", "bench", "tests", "policy")
# Made by `make` (Makefile) or by a tool, never committed: a path under these is named, not checked.
# bench/measured.json is written by `tools.e2e measured` from real-cloud runs (docs/e2e.md).
GENERATED = ("venv", "policy/venv", "build", "bench/measured.json")
# Paths in upstream repositories that the prose names as they are spelled there (checked to exist
# upstream when they were written: the repository is named beside the path).
UPSTREAM = {
    "tools/certs/common.mk": "istio/istio",  # the CA validities components/config/model.py copies
}
_NOT_AFTER = r"(?<![\w./:@~-])"  # a path inside a URL, a longer path or another repository is not ours
PATH = re.compile(_NOT_AFTER + "((?:" + "|".join(map(re.escape, TOP)) + r")/[\w./-]*[\w/])(#[\w-]+|::\w+)?")
DOTTED = re.compile(_NOT_AFTER + "((?:" + "|".join(PACKAGES) + r")(?:\.[A-Za-z_]\w*)+)")
FILE_SUFFIXES = ("py", "md", "yaml", "yml", "json", "txt", "toml")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)
# A section named in prose: README "The two commands", docs/delivery.md "Identities".
SECTION = re.compile(r"(README(?:\.md)?|(?:docs/)?[\w-]+\.md)(?:'s)? (?:section |table )?\"([^\"]+)\"")
HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")


def rendered(heading: str) -> str:
    """A heading's text as GitHub shows it: code spans and emphasis marks go, a link keeps its text."""
    return re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").replace("**", "")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading (github-slugger: github.com/Flet/github-slugger, index.js and
    script/generate-regex.mjs): the heading's rendered text, lower-cased; letters, marks, decimal
    and letter numbers, connector punctuation (`_`) and `-` stay, each space becomes `-`, anything
    else (other punctuation, symbols, other separators) goes."""
    text = rendered(heading).lower()
    kept = {"Nd", "Nl", "Pc"}
    return "".join("-" if ch == " " else ch for ch in text
                   if ch in " -" or ch.isalpha() or unicodedata.category(ch)[0] in "LM"
                   or unicodedata.category(ch) in kept)


def unique_slugs(headings: list[str]) -> list[str]:
    """Each heading's anchor in document order; a repeat gets `-1`, `-2`, ... (github-slugger's `slug`)."""
    seen: dict[str, int] = {}
    out = []
    for heading in headings:
        anchor = base = slug(heading)
        while anchor in seen:
            seen[base] += 1
            anchor = f"{base}-{seen[base]}"
        seen[anchor] = 0
        out.append(anchor)
    return out


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub makes for a document: one per heading outside code blocks, plus <a id>."""
    text = FENCE.sub("", markdown)
    return set(unique_slugs(HEADING.findall(text))) | set(HTML_ANCHOR.findall(text))


def _module_file(dotted: str) -> Path | None:
    path = ROOT.joinpath(*dotted.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _names(body: list[ast.stmt], dotted: str | None = None) -> dict[str, ast.AST | str]:
    """Names a module or class body binds: defs, classes, assignments, imports (as their source)."""
    names: dict[str, ast.AST | str] = {}
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        names[name.id] = node
        elif isinstance(node, ast.ImportFrom) and node.module:
            module = node.module if node.level == 0 else ".".join(
                [*(dotted or "").split(".")[: len((dotted or "").split(".")) - node.level + 1], node.module])
            for alias in node.names:
                names[alias.asname or alias.name] = f"{module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = alias.name
        elif isinstance(node, ast.If | ast.Try):
            names.update(_names(node.body, dotted))
    return names


def _class_names(cls: ast.ClassDef) -> set[str]:
    """A class's attributes: its body's names and what its methods set on `self`."""
    found = set(_names(cls.body))
    for node in ast.walk(cls):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self" \
                and isinstance(node.ctx, ast.Store):
            found.add(node.attr)
    return found


def resolves(dotted: str, depth: int = 0) -> bool:
    """Whether `a.b.C.d` names a project module and, after it, names that module binds (read from
    the source, nothing imported): `tools.verify.checks`, `offline.graph.owners`, `offline.Program`."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = ".".join(parts[:cut])
        file = _module_file(module)
        if file is None:
            continue
        rest = parts[cut:]
        if not rest:
            return True
        bound = _names(ast.parse(file.read_text()).body, module if file.name == "__init__.py" else
                       module.rsplit(".", 1)[0] + ".x")
        target = bound.get(rest[0])
        if target is None:
            return False
        if isinstance(target, str):  # imported: follow it while it stays in the project
            if target.split(".")[0] not in PACKAGES or depth > 5:
                return True
            return resolves(".".join([target, *rest[1:]]), depth + 1)
        if len(rest) == 1:
            return True
        if isinstance(target, ast.ClassDef):
            return rest[1] in _class_names(target)
        return True  # an attribute of a value (e.g. a dict's method): not a name the docs could lose
    return False


def path_problem(path: str, suffix: str | None) -> str | None:
    """Why a repo path does not resolve, or None. `suffix` is an optional `#anchor` into a markdown
    file or a pytest `::test_name` in a Python file."""
    if any(path == g or path.startswith(g + "/") for g in GENERATED) or path in UPSTREAM:
        return None
    target = ROOT / path.rstrip("/")
    if not target.exists():
        return "no such path"
    if suffix and suffix.startswith("#") and target.suffix == ".md" and suffix[1:] not in anchors(target.read_text()):
        return f"no heading makes {suffix}"
    if suffix and suffix.startswith("::") and suffix[2:] not in _names(ast.parse(target.read_text()).body):
        return f"no {suffix[2:]} in it"
    return None


def headings(markdown: str) -> list[str]:
    """A document's headings as rendered text (no code spans or link targets), outside code blocks."""
    return [rendered(h) for h in HEADING.findall(FENCE.sub("", markdown))]


def section_problem(file: str, title: str) -> str | None:
    """Why a section named in prose (`README "First deploy"`) is not there, or None: a heading of
    that file must start with the quoted words."""
    path = ROOT / "README.md" if file.startswith("README") else ROOT / file
    if not path.exists():
        path = ROOT / "docs" / file
    if not path.exists():
        return "no such file"
    if not any(h.lower().startswith(title.lower()) for h in headings(path.read_text())):
        return "no such section"
    return None


def reference_problems(text: str) -> list[str]:
    """The repo paths and dotted project names in `text` that do not exist."""
    problems = []
    for path, anchor in PATH.findall(text):
        why = path_problem(path, anchor or None)
        if why:
            problems.append(f"{path}{anchor}: {why}")
    for file, title in SECTION.findall(text):
        why = section_problem(file, title)
        if why:
            problems.append(f'{file} "{title}": {why}')
    for dotted in DOTTED.findall(text):
        if dotted.rsplit(".", 1)[-1] in FILE_SUFFIXES:
            continue  # a file name (`policy.md` beside docs/), not a module
        if not resolves(dotted):
            problems.append(f"{dotted}: no such module or name")
    return problems


def link_problems(text: str, base: Path) -> list[str]:
    """Relative links (and #anchors) in markdown `text` read from directory `base` that lead nowhere."""
    problems = []
    for target in LINK.findall(text):
        if target.startswith(("https://", "http://", "mailto:")):
            continue
        file, _, anchor = target.partition("#")
        path = (base / file).resolve() if file else None
        if path is not None and (not path.is_relative_to(ROOT) or not path.exists()):
            problems.append(f"{target}: no such file")
        elif anchor and (path is None or path.suffix == ".md") and \
                anchor not in anchors(text if path is None else path.read_text()):
            problems.append(f"{target}: no heading makes #{anchor}")
    return problems


def code_prose(path: Path, source: str | None = None) -> str:
    """A Python module's comments and docstrings, the prose that names other code; in the code the
    commands ship (not tests, whose strings are test data), every string too: messages, file headers.
    A logger's name is a name, not a reference."""
    source = path.read_text() if source is None else source
    tree = ast.parse(source)
    parts = [tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
             if tok.type == tokenize.COMMENT]
    skipped = {id(node.args[0]) for node in ast.walk(tree) if isinstance(node, ast.Call) and node.args
               and isinstance(node.func, ast.Attribute) and node.func.attr == "getLogger"}
    shipped = path.relative_to(ROOT).parts[0] != "tests"
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            docstring = ast.get_docstring(node, clean=False)
            if docstring:
                parts.append(docstring)
                skipped.add(id(node.body[0].value))  # type: ignore[attr-defined]  # read once, as the docstring
        elif shipped and isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped:
            parts.append(node.value)
    return "\n".join(parts)


CODE = sorted(p for p in ROOT.rglob("*.py") if not set(p.relative_to(ROOT).parts) & {"venv", "build"})


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_docs_name_only_paths_modules_and_sections_that_exist(doc: Path) -> None:
    text = doc.read_text()
    assert link_problems(text, doc.parent) + reference_problems(text) == []


@pytest.mark.parametrize("module", CODE, ids=_rel)
def test_comments_and_docstrings_name_only_paths_and_modules_that_exist(module: Path) -> None:
    assert reference_problems(code_prose(module)) == []


# The build, CI and pack files (not the stack files: those are the user's).
BUILD_FILES = sorted([ROOT / "Makefile", ROOT / ".ci" / "run", ROOT / "policy" / "PulumiPolicy.yaml",
                      *ROOT.glob("requirements*.txt"), *(ROOT / ".github" / "workflows").glob("*.yml")])


@pytest.mark.parametrize("path", BUILD_FILES, ids=_rel)
def test_build_and_ci_files_name_only_paths_and_modules_that_exist(path: Path) -> None:
    assert reference_problems(path.read_text()) == []


# github-slugger's own fixtures (test/fixtures.json), in order: repeats count per base slug.
SLUGGER_FIXTURES = [
    ("alpha", "alpha"), ("alpha", "alpha-1"), ("bravoCharlieDelta", "bravocharliedelta"),
    ("echo", "echo"), ("echo", "echo-1"), ("echo 1", "echo-1-1"), ("echo-1", "echo-1-2"), ("echo", "echo-2"),
    ("heading with a - dash", "heading-with-a---dash"),
    ("heading with an _ underscore", "heading-with-an-_-underscore"),
    ("heading with a period.txt", "heading-with-a-periodtxt"),
    ("exchange.bind_headers(exchange, routing [, bindCallback])",
     "exchangebind_headersexchange-routing--bindcallback"),
    ("apostrophe\u2019s should be trimmed", "apostrophes-should-be-trimmed"),
    ("I \u2665 unicode", "i--unicode"), ("en\u2013dash", "endash"),
    ("\u041f\u0440\u0438\u0432\u0435\u0442 non-latin \u4f60\u597d",
     "\u043f\u0440\u0438\u0432\u0435\u0442-non-latin-\u4f60\u597d"),
]


def test_anchors_are_githubs() -> None:
    assert unique_slugs([h for h, _ in SLUGGER_FIXTURES]) == [s for _, s in SLUGGER_FIXTURES]
    # Rendered text: code spans and links keep their text.
    assert slug("2. Let istiod pick it up, then the gateways (that cluster only)") == \
        "2-let-istiod-pick-it-up-then-the-gateways-that-cluster-only"
    assert slug("`make flip` and [the gate](flip.md#gate)") == "make-flip-and-the-gate"
    assert anchors("# A\n```bash\n# not a heading\n```\n## A\n<a id=\"kept\"></a>\n") == {"a", "a-1", "kept"}


def test_the_reference_check_finds_what_is_gone() -> None:
    text = """
    components/config.py and tools/schemas.py are gone; components/network.py, tools/render/ and
    docs/flip.md are not. tools.verify_checks and offline.graph.no_such are gone; tools.verify.checks,
    offline.graph.owners, offline.Program (re-exported), offline.engine.Program.by_urn are not.
    docs/rotate-intermediate-ca.md#3-restart is a dead anchor, docs/rotate-intermediate-ca.md#3-verify is
    not; tests/test_docs.py::test_nothing is no test, tests/test_docs.py::test_anchors_are_githubs is.
    venv/bin/python and build/render are made by make; https://github.com/istio/istio/tools/x is upstream.
    README "Istio version" is no section, README's "The two commands" and docs/delivery.md "Identities" are.
    """
    assert reference_problems(text) == [
        "components/config.py: no such path",
        "tools/schemas.py: no such path",
        "docs/rotate-intermediate-ca.md#3-restart: no heading makes #3-restart",
        "tests/test_docs.py::test_nothing: no test_nothing in it",
        'README "Istio version": no such section',
        "tools.verify_checks: no such module or name",
        "offline.graph.no_such: no such module or name",
    ]


def test_the_link_check_finds_missing_files_and_anchors() -> None:
    text = ("[a](flip.md) [b](nope.md) [c](rotate-intermediate-ca.md#3-verify) [d](rotate-intermediate-ca.md#gone)"
            " [e](#here) [f](#there) [g](https://example.com/x.md#y) [h](../../outside.md)\n\n## Here\n")
    assert link_problems(text, ROOT / "docs") == [
        "nope.md: no such file", "rotate-intermediate-ca.md#gone: no heading makes #gone",
        "#there: no heading makes #there", "../../outside.md: no such file"]


def test_shipped_strings_are_checked_but_logger_names_and_test_data_are_not() -> None:
    source = '''"""Uses tools.verify_kube."""\nimport logging\n# see components/config.py\n
LOG = logging.getLogger("offline.engine.program")\nHEADER = "Rendered by tools/render.py"\n'''
    module = ROOT / "tools" / "render" / "__init__.py"  # a shipped path; the text is read from `source`
    prose = code_prose(module, source)
    assert "offline.engine.program" not in prose
    assert reference_problems(prose) == ["components/config.py: no such path", "tools/render.py: no such path",
                                         "tools.verify_kube: no such module or name"]
    assert "tools/render.py" not in code_prose(ROOT / "tests" / "test_x.py", source)


def test_development_md_maps_every_module() -> None:
    """Every module of the program, the engine, the commands, the bench, the pack and the tests is
    named by its path in docs/development.md (a package's `__init__.py` and `__main__.py` by its folder)."""
    text = (ROOT / "docs" / "development.md").read_text()
    unnamed = []
    for module in CODE:
        rel = _rel(module)
        named = f"`{rel}" in text or f" {rel}" in text
        if module.name in ("__init__.py", "__main__.py"):
            named = named or f"`{_rel(module.parent)}/" in text or f" {_rel(module.parent)}/" in text
        if not named:
            unnamed.append(rel)
    assert unnamed == []


def test_the_readme_and_the_changelog_name_the_projects_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    readme = (ROOT / "README.md").read_text()
    assert re.findall(r"^Version (\S+) ", readme, re.M) == [version]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, re.M)
    assert released and released[0] == version, "the newest release in CHANGELOG.md is the project's version"
    assert changelog.index("## [Unreleased]") < changelog.index(f"## [{version}]")


def test_the_license_is_apache_2() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "Apache-2.0"
