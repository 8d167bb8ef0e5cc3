"""The exercises of a chapter, run as a student and as a teacher would: each check must fail without the solutions
and pass with them.

A chapter's exercises are the cells from its `## Exercises` heading on: setup cells, then per exercise a
`#| starter`, a `#| solution` and a `#| check` cell (course_cells.py). `run_exercises` executes them in a fresh
namespace, in this process: the chapter's import cells first, then the section with the starters (student) or the
solutions (teacher), recording each check's outcome. With `full=True` every cell of the chapter before the section
runs first (for exercises that use the chapter's objects; cells flagged `slow`/`cuda` or `eval: false` are skipped).

    python tools/course_exercises.py nbs/21_vision.ipynb --full     # both variants; exit 1 unless all is as it should
"""
from __future__ import annotations
import argparse, contextlib, random, sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_cells import directives, exercise_role, is_import_only  # noqa: E402

HEADING = "## Exercises"


def section_start(nb) -> int | None:
    "The index of the markdown cell that opens the exercises, or None"
    return next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
                 and c.source.lstrip().startswith(HEADING)), None)


def _runs(c, skip_flags: set[str]) -> bool:
    "Whether a chapter cell runs outside nbdev's flags: code, not `eval: false`, not flagged"
    d = directives(c.source)
    return c.cell_type == "code" and d.get("eval") != "false" and not skip_flags & set(d)


@contextlib.contextmanager
def kept_random_state():
    "Leave the random generators of torch, numpy and random as they were"
    import numpy as np
    import torch
    states = torch.get_rng_state(), np.random.get_state(), random.getstate()
    try: yield
    finally:
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


def _exec(c, ns: dict, name: str) -> None:
    exec(compile(c.source, f"<{name}>", "exec"), ns)


def run_exercises(nb, teacher: bool, full: bool = False, skip_flags=frozenset({"slow", "cuda"})) -> list[dict]:
    "Each check's outcome ({check, passed, error, message}) with the solutions (teacher) or the starters (student)"
    start = section_start(nb)
    if start is None: raise ValueError(f"no {HEADING!r} heading in the notebook")
    before = [c for c in nb.cells[:start] if _runs(c, set(skip_flags))]
    ns, out, skip = {"__name__": "__main__"}, [], "starter" if teacher else "solution"
    with kept_random_state():
        for i, c in enumerate(before if full else [c for c in before if is_import_only(c.source)]):
            _exec(c, ns, f"chapter cell {i}")
        for i, c in enumerate(nb.cells[start:]):
            role = exercise_role(c)
            if c.cell_type != "code" or role == skip: continue
            if role != "check":
                _exec(c, ns, f"exercise cell {i}")
                continue
            try:
                _exec(c, ns, f"check {len(out) + 1}")
                out.append(dict(check=len(out) + 1, passed=True, error=None, message=""))
            except Exception as e:  # a check that fails is the point; any error is recorded, not raised
                out.append(dict(check=len(out) + 1, passed=False, error=type(e).__name__, message=str(e)))
    return out


def main(argv: list[str] | None = None) -> int:
    "Command line: run a chapter's exercises both ways; exit 1 unless every check fails bare and passes solved"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebook", type=Path)
    ap.add_argument("--full", action="store_true", help="run the whole chapter before its exercises")
    a = ap.parse_args(argv)
    nb = nbformat.read(a.notebook, as_version=4)
    student, teacher = run_exercises(nb, False, a.full), run_exercises(nb, True, a.full)
    ok = bool(student) and not any(r["passed"] for r in student) and all(r["passed"] for r in teacher)
    for s, t in zip(student, teacher):
        print(f"check {s['check']}: without the solution {s['error'] or 'PASSED'}: {s['message'][:80]!r}; "
              f"with it {'passed' if t['passed'] else 'FAILED: ' + t['message'][:80]}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
