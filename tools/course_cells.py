"""What a reader sees of each cell: nbdev's directives, the cells nbdev's docs hide, `show_doc` as an API reference,
and the exercises' cells in the student and the teacher build.

Cells follow nbdev's rules: `#| hide` cells (and `default_exp`, `include: false`) are left out, `#| echo: false`
shows only the output, `#| output: false` only the code; an `#| export` cell that only imports is left out, and a
plain cell that only imports is folded. A cell that only calls `show_doc` shows its output alone, rendered as an
API reference: signature, docstring, and a table of the parameters with the docs written beside them (docments).

Exercises: a `#| starter` cell holds what a student starts from, a `#| solution` cell the answer, a `#| check`
cell the test a student runs. All three run in `nbdev-test` (starter, then solution, then check: the checks pass
with the solutions). The student build leaves out the solutions and the checks' outputs; the teacher build
leaves out the starters.
"""
from __future__ import annotations
import ast, re

import nbformat

_DIRECTIVE = re.compile(r"^\s*#\s*\|\s*(.*?)\s*$")
EXERCISE_ROLES = ("starter", "solution", "check")


def directives(source: str) -> dict[str, str]:
    "The nbdev directives (`#| name value`) at the top of a cell's source, as {name: value}"
    out = {}
    for line in source.splitlines():
        if not line.strip(): continue
        m = _DIRECTIVE.match(line)
        if not m: break
        name, _, value = m.group(1).replace(":", " ", 1).partition(" ")
        out[name.strip().lower()] = value.strip().lower()
    return out


def strip_directives(source: str) -> str:
    "The source without its leading directive lines"
    lines = source.splitlines()
    i = 0
    while i < len(lines) and (not lines[i].strip() or _DIRECTIVE.match(lines[i])): i += 1
    return "\n".join(lines[i:])


def _statements(source: str) -> list | None:
    "The top-level statements of a cell's code, or None when it is not plain Python (magics, syntax errors)"
    try: return ast.parse(strip_directives(source)).body
    except SyntaxError: return None


def is_import_only(source: str) -> bool:
    "Whether the cell's code is nothing but import statements"
    body = _statements(source)
    return bool(body) and all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in body)


def is_show_doc(source: str) -> bool:
    "Whether the cell's code is nothing but `show_doc(...)` calls"
    body = _statements(source)
    return bool(body) and all(isinstance(s, ast.Expr) and isinstance(s.value, ast.Call)
                              and getattr(s.value.func, "id", None) == "show_doc" for s in body)


def exercise_role(cell) -> str | None:
    "'starter', 'solution' or 'check' for an exercise's cells, else None"
    if cell.cell_type != "code": return None
    d = directives(cell.source)
    return next((r for r in EXERCISE_ROLES if r in d), None)


def is_hidden(cell) -> bool:
    "Whether nbdev's docs would leave the cell out: `hide`, `include: false`, `default_exp`, export-only imports"
    d = directives(cell.source)
    if "hide" in d or d.get("include") == "false" or "default_exp" in d: return True
    return any(k in d for k in ("export", "exporti")) and is_import_only(cell.source)


def for_variant(nb, teacher: bool):
    "The notebook of the student build (no solutions, checks without outputs) or of the teacher build (no starters)"
    keep = []
    for c in nb.cells:
        role = exercise_role(c)
        if role == ("starter" if teacher else "solution"): continue
        if role == "check" and not teacher: c.outputs = []
        keep.append(c)
    nb.cells = keep
    return nb


def folded_imports(source: str):
    "A markdown cell folding the imports away, as nbdev's docs do for `#| code-fold`"
    code = strip_directives(source).strip()
    n = len(_statements(source) or [])
    summary = f"imports ({n} line{'s' * (n != 1)})"
    return nbformat.v4.new_markdown_cell(f'<details class="course-imports"><summary>{summary}</summary>\n\n'
                                         f"```python\n{code}\n```\n\n</details>", metadata={"course_note": True})
