"""The README's picture of the graph is the graph: every edge drawn exists and none is missing."""

from __future__ import annotations

import re
from pathlib import Path

from graphs.graph import graph

README = Path(__file__).resolve().parents[2] / "README.md"
_EDGE = re.compile(r"^\s*(\w+)(?:\([^)]*\))?\s*-(?:->|\.[^.]*\.->)\s*(\w+)")


def _readme_edges() -> set[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    block = text.split("```mermaid", 1)[1].split("```", 1)[0]
    edges = set()
    for line in block.splitlines():
        m = _EDGE.match(line)
        if m:
            edges.add((m.group(1), m.group(2)))
    return edges


def test_readme_mermaid_matches_the_compiled_graph() -> None:
    drawn = _readme_edges()
    actual = {(e.source, e.target) for e in graph.get_graph().edges}
    assert drawn, "no mermaid edges found in README.md"
    assert drawn == actual
