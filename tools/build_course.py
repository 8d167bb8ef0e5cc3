#!/usr/bin/env python
"""Build the offline HTML course: execute every notebook in `nbs/` (as `jupyter nbconvert --execute --to html`
would), render each to `_site/NAME.html` with its outputs and plots inlined, and write `_site/index.html`
listing the chapters in reading order, plus `_site/course.json` (one record per chapter).

    python tools/build_course.py                      # the whole course, default cells (like nbdev-test)
    python tools/build_course.py --only 10,11         # some chapters (by name prefix); the index lists those built
    python tools/build_course.py --flags slow         # also run the cells tagged `#| slow`
    python tools/build_course.py --reuse              # skip executing chapters whose sources have not changed
    python tools/build_course.py --no-execute         # render the notebooks as they are (no outputs if cleaned)

Cells follow nbdev's rules: cells tagged with a flag of `tst_flags` (pyproject.toml) run only when that flag is
given, `#| eval: false` cells never run, `#| hide` cells are left out of the page, `#| echo: false` shows only
the output, `#| output: false` only the code; directive lines are removed from the shown code.
Everything works offline (HF_HUB_OFFLINE=1 is set for the kernels). Exit status 1 if any chapter failed;
its page is still written, with the error in place.
"""
from __future__ import annotations
import argparse, hashlib, html, json, os, re, sys, time, tomllib
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import ExecutePreprocessor, CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
SKIP_TAG = "skip-execution"  # nbclient's default `skip_cells_with_tag`
_DIRECTIVE = re.compile(r"^\s*#\s*\|\s*(.*?)\s*$")


def tst_flags(root: Path = ROOT) -> set[str]:
    "The nbdev test flags (`[tool.nbdev] tst_flags` in pyproject.toml), whose cells run only on request"
    p = root / "pyproject.toml"
    if not p.exists(): return {"slow", "cuda"}
    cfg = tomllib.loads(p.read_text()).get("tool", {}).get("nbdev", {})
    return set(str(cfg.get("tst_flags", "slow cuda")).split())


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
    lines = source.splitlines(); i = 0
    while i < len(lines) and (not lines[i].strip() or _DIRECTIVE.match(lines[i])): i += 1
    return "\n".join(lines[i:])


def chapters(nbs: Path, only: list[str] | None = None) -> list[Path]:
    "The notebooks of `nbs` in reading order (index first, then by file name); `only` keeps names starting with one of its prefixes"
    files = [p for p in nbs.glob("*.ipynb") if not p.name.startswith(("_", "."))]
    files.sort(key=lambda p: ("" if p.stem == "index" else p.name))
    if only: files = [p for p in files if any(p.stem.startswith(o) for o in only)]
    return files


def title_and_summary(nb) -> tuple[str, str]:
    "The chapter's title (first `# ` heading) and summary (first `> ` line) from its first markdown cell"
    title, summary = "", ""
    for c in nb.cells:
        if c.cell_type != "markdown": continue
        for line in c.source.splitlines():
            if not title and line.startswith("# "): title = line[2:].strip()
            elif not summary and line.startswith("> "): summary = line[2:].strip()
        if title: break
    return title, summary


def mark_skipped(nb, run_flags: set[str], all_flags: set[str]) -> int:
    "Tag the cells that must not run (flags not asked for, `eval: false`) so the executor skips them; their count"
    n = 0
    for c in nb.cells:
        if c.cell_type != "code": continue
        d = directives(c.source)
        skip = d.get("eval") == "false" or any(f in d and f not in run_flags for f in all_flags)
        if skip:
            c.metadata.setdefault("tags", []).append(SKIP_TAG)
            c.metadata["course_skipped"] = sorted(f for f in all_flags if f in d) or ["eval: false"]
            n += 1
    return n


def for_display(nb):
    "The notebook as a reader sees it: hidden cells gone, directives stripped, skipped cells noted"
    cells = []
    for c in nb.cells:
        if c.cell_type != "code": cells.append(c); continue
        d = directives(c.source)
        if "hide" in d or d.get("include") == "false" or "default_exp" in d: continue
        c.source = strip_directives(c.source)
        if not c.source.strip() and not c.get("outputs"): continue
        if d.get("output") == "false": c.outputs = []
        if d.get("echo") == "false": c.metadata.setdefault("tags", []).append("remove_input")
        skipped = c.metadata.pop("course_skipped", None)
        if SKIP_TAG in c.metadata.get("tags", []): c.metadata["tags"].remove(SKIP_TAG)
        if skipped:
            why = ", ".join(skipped)
            flag = next((s for s in skipped if s != "eval: false"), None)
            note = f"*Not run in this build ({why})" + (f"; build with `--flags {flag}` to run it.*" if flag else ".*")
            cells.append(nbformat.v4.new_markdown_cell(note, metadata={"course_note": True}))
        cells.append(c)
    nb.cells = cells
    return nb


def count_images(nb) -> int:
    "The number of image outputs (png, jpeg, svg) in a notebook"
    return sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
               if any(k in o.get("data", {}) for k in ("image/png", "image/jpeg", "image/svg+xml")))


def has_outputs(nb) -> bool:
    "Whether any code cell of the notebook carries outputs"
    return any(c.get("outputs") for c in nb.cells if c.cell_type == "code")


def source_hash(nb_path: Path, run_flags: set[str], lib: Path) -> str:
    "A hash of the notebook's sources, the library's sources and the flags: a changed hash means run it again"
    h = hashlib.sha256()
    nb = nbformat.read(nb_path, as_version=4)
    for c in nb.cells: h.update(c.cell_type.encode()); h.update(c.source.encode())
    for p in sorted(lib.glob("*.py")) if lib.exists() else []: h.update(p.name.encode()); h.update(p.read_bytes())
    h.update(" ".join(sorted(run_flags)).encode())
    return h.hexdigest()[:16]


def execute(nb, cwd: Path, timeout: int, kernel: str) -> tuple[float, str | None]:
    "Run the notebook in a fresh kernel with `cwd` as its folder; (seconds, error text or None)"
    ep = ExecutePreprocessor(timeout=timeout, kernel_name=kernel, skip_cells_with_tag=SKIP_TAG)
    t0 = time.perf_counter(); err = None
    try: ep.preprocess(nb, {"metadata": {"path": str(cwd)}})
    except CellExecutionError as e: err = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
    except Exception as e: err = f"{type(e).__name__}: {e}"
    return time.perf_counter() - t0, err


_NAV_CSS = """<style>
.course-nav{font-family:system-ui,sans-serif;display:flex;justify-content:space-between;gap:1em;padding:.6em 1.2em;
background:#f3f4f6;border-bottom:1px solid #ddd;font-size:14px}
.course-nav a{text-decoration:none}
.course-fail{background:#fee2e2;border:1px solid #f87171;padding:.6em 1.2em;font-family:system-ui,sans-serif}
</style>"""


def nav_html(prev: dict | None, nxt: dict | None) -> str:
    "The bar of links (previous, contents, next) put at the top and bottom of each chapter page"
    p = f'<a href="{prev["page"]}">&larr; {html.escape(prev["title"])}</a>' if prev else "<span></span>"
    n = f'<a href="{nxt["page"]}">{html.escape(nxt["title"])} &rarr;</a>' if nxt else "<span></span>"
    return f'<nav class="course-nav">{p}<a href="index.html">Contents</a>{n}</nav>'


def render(nb, title: str) -> str:
    "The notebook as a standalone HTML page (nbconvert's lab template, images inlined)"
    from traitlets.config import Config
    cfg = Config(); cfg.TagRemovePreprocessor.enabled = True; cfg.TagRemovePreprocessor.remove_input_tags = {"remove_input"}
    exporter = HTMLExporter(config=cfg, template_name="lab", embed_images=True)
    exporter.exclude_input_prompt = True; exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    return body


def add_nav(page: str, nav: str, error: str | None) -> str:
    "The page with the navigation bar (and a failure banner) at the top and the bar at the bottom"
    top = _NAV_CSS + nav + (f'<div class="course-fail">This chapter failed while building: {html.escape(error)}</div>' if error else "")
    page = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + top, page, count=1)
    return page.replace("</body>", nav + "</body>", 1)


def _code(s: str) -> str:
    "Markdown `code` spans as <code> elements"
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", s)


def index_html(records: list[dict], title: str) -> str:
    "The course's contents page: the chapters in reading order with their summaries and run times"
    rows = []
    for r in records:
        status = "failed" if r["error"] else ("not run" if not r["executed"] and not r["reused"] else f'{r["seconds"]:.0f} s')
        rows.append(f'<li><a href="{r["page"]}">{html.escape(r["title"])}</a> <span class="meta">({html.escape(r["name"])}, '
                    f'{r["images"]} plot{"s" if r["images"] != 1 else ""}, {status})</span>'
                    + (f'<div class="sum">{_code(html.escape(r["summary"]))}</div>' if r["summary"] else "") + "</li>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:52em;margin:2em auto;padding:0 1em;line-height:1.5}}
li{{margin:.7em 0}} .meta{{color:#666;font-size:90%}} .sum{{color:#333}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>The notebooks of the project, executed and rendered in reading order. Each page shows the code, its outputs and its plots;
cells flagged <code>slow</code> or <code>cuda</code> are noted where they were not run.</p>
<ol class="chapters">
{chr(10).join(rows)}
</ol>
<p class="meta">Built {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())} by <code>python tools/build_course.py</code>.</p>
</body></html>
"""


def build(nbs: Path = ROOT / "nbs", out: Path = ROOT / "_site", only: list[str] | None = None, flags: set[str] = frozenset(),
          execute_cells: bool = True, reuse: bool = False, timeout: int = 1200, kernel: str = "python3",
          title: str = "adaptnb: adapting pretrained models — the course", lib: Path = ROOT / "adaptnb", quiet: bool = False) -> list[dict]:
    "Execute and render the chapters of `nbs` into `out`; returns one record per chapter (also in `out/course.json`)"
    nbs, out = Path(nbs).resolve(), Path(out).resolve()
    files = chapters(nbs, only)
    if not files: raise SystemExit(f"no notebooks found in {nbs}" + (f" matching {only}" if only else ""))
    all_flags = tst_flags(nbs.parent if (nbs.parent / "pyproject.toml").exists() else ROOT)
    unknown = set(flags) - all_flags
    if unknown: raise SystemExit(f"unknown flag(s) {sorted(unknown)}: the flags are {sorted(all_flags)}")
    out.mkdir(parents=True, exist_ok=True); cache = out / ".executed"; cache.mkdir(exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1"); os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    records = []
    for f in files:
        nb = nbformat.read(f, as_version=4)
        title_, summary = title_and_summary(nb)
        rec = dict(name=f.stem, page=f"{f.stem}.html", title=title_ or f.stem, summary=summary, executed=False,
                   reused=False, seconds=0.0, skipped_cells=0, images=0, error=None)
        key = source_hash(f, set(flags), lib); cached = cache / f"{f.stem}.{key}.ipynb"
        rec["skipped_cells"] = mark_skipped(nb, set(flags), all_flags)
        if execute_cells and reuse and cached.exists():
            nb = nbformat.read(cached, as_version=4); rec["reused"] = True
            rec["seconds"] = nb.metadata.get("course", {}).get("seconds", 0.0)
        elif execute_cells:
            if not quiet: print(f"running {f.name} ...", flush=True)
            rec["seconds"], rec["error"] = execute(nb, f.parent, timeout, kernel); rec["executed"] = True
            nb.metadata["course"] = {"seconds": rec["seconds"]}
            for old in cache.glob(f"{f.stem}.*.ipynb"): old.unlink()
            if rec["error"] is None: nbformat.write(nb, cached)
        nb = for_display(nb)
        rec["images"] = count_images(nb)
        rec["_nb"] = nb
        records.append(rec)
        if not quiet:
            state = "FAILED: " + rec["error"] if rec["error"] else ("reused" if rec["reused"] else f'{rec["seconds"]:.1f} s')
            print(f"  {f.stem}: {state}, {rec['images']} plot(s), {rec['skipped_cells']} cell(s) not run", flush=True)
    for i, rec in enumerate(records):
        nb = rec.pop("_nb")
        page = render(nb, rec["title"])
        nav = nav_html(records[i - 1] if i else None, records[i + 1] if i + 1 < len(records) else None)
        (out / rec["page"]).write_text(add_nav(page, nav, rec["error"]), encoding="utf-8")
    (out / "index.html").write_text(index_html(records, title), encoding="utf-8")
    (out / "course.json").write_text(json.dumps({"title": title, "flags": sorted(flags), "chapters": records}, indent=2) + "\n")
    return records


def main(argv: list[str] | None = None) -> int:
    "Command line: build the course and print one line per chapter"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nbs", type=Path, default=ROOT / "nbs", help="folder of notebooks (default nbs/)")
    ap.add_argument("--out", type=Path, default=ROOT / "_site", help="output folder (default _site/)")
    ap.add_argument("--only", default="", help="comma-separated name prefixes of the chapters to build, e.g. 10,11")
    ap.add_argument("--flags", default="", help="space- or comma-separated test flags whose cells also run, e.g. slow")
    ap.add_argument("--reuse", action="store_true", help="reuse the executed copy of chapters whose sources did not change")
    ap.add_argument("--no-execute", action="store_true", help="render the notebooks as they are, without running them")
    ap.add_argument("--timeout", type=int, default=1200, help="seconds one cell may run (default 1200)")
    ap.add_argument("--kernel", default="python3", help="Jupyter kernel name (default python3)")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    recs = build(a.nbs, a.out, [o for o in a.only.split(",") if o] or None, set(re.split(r"[,\s]+", a.flags.strip())) - {""},
                 execute_cells=not a.no_execute, reuse=a.reuse, timeout=a.timeout, kernel=a.kernel)
    failed = [r["name"] for r in recs if r["error"]]
    print(f"built {len(recs)} chapter(s) into {a.out}/ in {time.perf_counter() - t0:.0f} s" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
