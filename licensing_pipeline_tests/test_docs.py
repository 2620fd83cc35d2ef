"""The docs stay true to the code: links resolve, variables and CLI options match, the asset
graph in the README is the real one. Each failure names the file and what is wrong."""

from __future__ import annotations

import argparse
import ast
import difflib
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from licensing_pipeline.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
VARIABLE = re.compile(r"LICENSING_[A-Z0-9_]+")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)
PRIVATE_HOSTS = ("localhost", "127.0.0.1", "0.0.0.0", "::1")


def _prose(text: str) -> str:
    """The text without code blocks and code spans, where brackets are not links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower-cased, punctuation dropped,
    spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[`*]", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for match in HEADING.finditer(FENCE.sub("", page.read_text())):
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def link_problems(page: Path) -> Iterator[str]:
    for target in LINK.findall(_prose(page.read_text())):
        where = f"{page.relative_to(ROOT)}: link {target!r}"
        parts = urlsplit(target)
        if parts.scheme in ("http", "https"):
            if not parts.hostname or parts.hostname in PRIVATE_HOSTS:
                yield f"{where} is not a public site"
            continue
        if parts.scheme or parts.netloc:
            yield f"{where} leaves the repository"
            continue
        file = (page.parent / parts.path).resolve() if parts.path else page
        if not file.is_relative_to(ROOT):
            yield f"{where} leaves the repository"
        elif not file.exists():
            yield f"{where}: {file.relative_to(ROOT)} does not exist"
        elif parts.fragment and file.suffix == ".md" and parts.fragment not in anchors(file):
            yield f"{where}: no heading #{parts.fragment} in {file.relative_to(ROOT)}"


def test_every_link_resolves_inside_the_repository_or_to_a_public_site() -> None:
    problems = [problem for page in PAGES for problem in link_problems(page)]
    assert not problems, "\n".join(problems)


def test_slugs_follow_github() -> None:
    assert slug("The enforcement feed (for the product)") == "the-enforcement-feed-for-the-product"
    assert slug("`usage/`: CloudEvents 1.0") == "usage-cloudevents-10"
    assert slug("Runs, commands and readers that meet") == "runs-commands-and-readers-that-meet"


def variables_read() -> set[str]:
    """Every string literal of the package that is a whole ``LICENSING_*`` name: how the code
    names a variable it reads (or hands to dbt), whatever call it goes through."""
    names = set()
    for path in (ROOT / "licensing_pipeline").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if is_text and VARIABLE.fullmatch(node.value):
                names.add(node.value)
    return names


def variables_documented() -> set[str]:
    """The first cell of every table row of docs/environment.md that names a variable."""
    text = (DOCS / "environment.md").read_text()
    return set(re.findall(r"^\|\s*`(LICENSING_[A-Z0-9_]+)`\s*\|", text, re.M))


def test_every_variable_the_code_reads_is_documented_and_no_other() -> None:
    read, documented = variables_read(), variables_documented()
    assert read, "no LICENSING_* literal found in licensing_pipeline/: the scan is broken"
    problems = [
        f"docs/environment.md does not document {name}" for name in sorted(read - documented)
    ]
    problems += [
        f"docs/environment.md documents {name}, which no code reads"
        for name in sorted(documented - read)
    ]
    assert not problems, "\n".join(problems)


def command_tree(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], set[str]]]:
    """Each command's path (e.g. ``("policy", "exceptions", "add")``) and its options."""
    options = {
        option
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction)
        for option in action.option_strings
    }
    yield path, options
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from command_tree(child, (*path, name))


def commands_documented() -> dict[tuple[str, ...], set[str]]:
    """docs/cli.md: a heading ``licensing-pipeline <command> [ARGS]`` per command, and its
    options in the first cell of the table rows below it."""
    documented: dict[tuple[str, ...], set[str]] = {}
    current: set[str] | None = None
    for line in (DOCS / "cli.md").read_text().splitlines():
        heading = re.match(r"^#+ `licensing-pipeline ([^`]*)`", line)
        if heading:
            words = heading.group(1).split()
            path = tuple(w for w in words if re.fullmatch(r"[a-z][a-z-]*", w))
            current = documented.setdefault(path, set())
        elif current is not None and line.startswith("| `-"):
            cell = line.split("|")[1]
            current.update(re.findall(r"`(--?[a-z][a-z0-9-]*)", cell))
    return documented


def test_every_command_and_option_is_in_cli_md_and_exists() -> None:
    tree = dict(command_tree(build_parser()))
    documented = commands_documented()
    leaves = {path for path in tree if path and not any(p[: len(path)] == path != p for p in tree)}
    problems = [
        f"command not in docs/cli.md: {' '.join(p)}" for p in sorted(leaves - set(documented))
    ]
    for path, options in sorted(documented.items()):
        name = " ".join(path)
        if path not in tree:
            problems.append(f"docs/cli.md documents a command that does not exist: {name}")
            continue
        problems += [f"option not in docs/cli.md: {name} {o}" for o in sorted(tree[path] - options)]
        problems += [f"docs/cli.md: {name} has no option {o}" for o in sorted(options - tree[path])]
    assert not problems, "\n".join(problems)


GROUP_ORDER = ("sources", "warehouse", "compliance", "policy", "reports", "remediation", "history")


def asset_graph_mermaid() -> str:
    """The README's diagram as the code defines it: a subgraph per group, an edge line per
    asset with its parents."""
    from licensing_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = sorted(graph.get_all_asset_keys(), key=lambda key: key.to_user_string())
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(graph.get(key).group_name, []).append(key.to_user_string())
    order = sorted(groups, key=lambda g: (GROUP_ORDER.index(g) if g in GROUP_ORDER else 99, g))
    lines = ["flowchart LR"]
    for group in order:
        lines += [f"  subgraph {group}", f"    {'; '.join(groups[group])}", "  end"]
    for key in keys:
        parents = sorted(parent.to_user_string() for parent in graph.get(key).parent_keys)
        if parents:
            lines.append(f"  {' & '.join(parents)} --> {key.to_user_string()}")
    return "\n".join(lines) + "\n"


def test_the_readme_draws_the_real_asset_graph() -> None:
    block = re.search(r"^```mermaid\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)
    assert block, "README.md has no mermaid block"
    expected = asset_graph_mermaid()
    changes = difflib.unified_diff(
        block.group(1).splitlines(), expected.splitlines(), "README.md", "the code", lineterm=""
    )
    assert block.group(1) == expected, "README.md's asset graph differs from the code's:\n" + (
        "\n".join(changes)
    )
