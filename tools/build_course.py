#!/usr/bin/env python
"""Build the offline HTML course from `nbs/`: one page per notebook with its outputs and plots, equations typeset as
MathML at build time, a sidebar in reading order, and `_site/index.html`, the course map. Needs no network, to
build or to read.

    python tools/build_course.py                      # execute every notebook (like nbdev-test), write _site/
    python tools/build_course.py --no-execute         # render the notebooks with their committed outputs (seconds)
    python tools/build_course.py --teacher            # the teacher's build: exercise solutions shown (_site-teacher/)
    python tools/build_course.py --only 20,21         # some notebooks (by name prefix)
    python tools/build_course.py --flags slow         # also run the cells tagged `#| slow`
    python tools/build_course.py --reuse              # skip executing notebooks whose sources have not changed
    python tools/build_course.py --write-outputs --only 20,21,22   # execute and commit outputs into nbs/*.ipynb

A page shows what nbdev's docs show (course_cells.py): `#| hide` cells and export-only imports left out, other
imports folded, `show_doc` as an API reference; tagged cells (`tst_flags` of pyproject.toml) run only when their flag
is given and `#| eval: false` cells never run, each noted where it was not run. The student build leaves out the
exercises' `#| solution` cells; `_site/notebooks/` holds each notebook as the build's readers get it.
`--write-outputs` writes deterministic, compact outputs back (course_outputs.py) and builds no page.
Exit status 1 if any notebook failed (its page is still written, with the error in place) or a formula did not
convert.
"""
from __future__ import annotations
import argparse, hashlib, html, json, os, re, sys, time, tomllib
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.filters import markdown2html
from nbconvert.preprocessors import ExecutePreprocessor, CellExecutionError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course_api import api_reference_html, class_fields, is_show_doc_markdown  # noqa: E402
from course_cells import (directives, strip_directives, exercise_role, is_hidden, is_import_only,  # noqa: E402,F401
                          is_show_doc, for_variant, folded_imports)
from course_math import markdown_math  # noqa: E402
from course_outputs import clean_outputs, write_notebook  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SKIP_TAG = "skip-execution"  # nbclient's default `skip_cells_with_tag`
CSS = Path(__file__).with_name("course.css")
TITLE = "adaptnb: adapting pretrained models — the course"
GROUPS = {"index": "Start", "0": "The library, layer by layer", "1": "Dashboards and the command line",
          "2": "Course chapters"}
IMAGE_KEYS = ("image/png", "image/jpeg", "image/svg+xml")


def tst_flags(root: Path = ROOT) -> set[str]:
    "The nbdev test flags (`[tool.nbdev] tst_flags` in pyproject.toml), whose cells run only on request"
    p = root / "pyproject.toml"
    if not p.exists(): return {"slow", "cuda"}
    cfg = tomllib.loads(p.read_text()).get("tool", {}).get("nbdev", {})
    return set(str(cfg.get("tst_flags", "slow cuda")).split())


def chapters(nbs: Path, only: list[str] | None = None) -> list[Path]:
    "The notebooks of `nbs` in reading order (index first, then by name); `only` keeps names starting with a prefix"
    files = [p for p in nbs.glob("*.ipynb") if not p.name.startswith(("_", "."))]
    files.sort(key=lambda p: ("" if p.stem == "index" else p.name))
    if only: files = [p for p in files if any(p.stem.startswith(o) for o in only)]
    return files


def page_name(stem: str) -> str:
    "The page of a notebook: index.ipynb (the README) becomes readme.html, index.html being the course map"
    return "readme.html" if stem == "index" else f"{stem}.html"


def title_and_summary(nb) -> tuple[str, str]:
    "The chapter's title (its `# ` heading) and summary (the `> ` quote below it) from its first titled markdown cell"
    for c in nb.cells:
        if c.cell_type != "markdown": continue
        title = next((l[2:].strip() for l in c.source.splitlines() if l.startswith("# ")), "")
        quote = re.search(r"^> .*(?:\n>.*)*", c.source, flags=re.M)
        summary = " ".join(l.lstrip(">").strip() for l in quote.group(0).splitlines()) if quote else ""
        if title: return title, summary
    return "", ""


def mark_skipped(nb, run_flags: set[str], all_flags: set[str]) -> int:
    "Tag the cells that must not run (flags not asked for, `eval: false`) so the executor skips them; their count"
    n = 0
    for c in nb.cells:
        if c.cell_type != "code": continue
        d = directives(c.source)
        if d.get("eval") == "false" or any(f in d and f not in run_flags for f in all_flags):
            c.metadata.setdefault("tags", []).append(SKIP_TAG)
            c.metadata["course_skipped"] = sorted(f for f in all_flags if f in d) or ["eval: false"]
            n += 1
    return n


def unmark(c) -> list[str] | None:
    "Remove the marks `mark_skipped` put on a cell; the reasons it was skipped, or None"
    skipped = c.metadata.pop("course_skipped", None)
    tags = c.metadata.get("tags", [])
    if SKIP_TAG in tags: tags.remove(SKIP_TAG)
    if not tags: c.metadata.pop("tags", None)
    return skipped


def skipped_note(skipped: list[str]):
    "The note put before a cell that was not run"
    why = ", ".join(skipped)
    flag = next((s for s in skipped if s != "eval: false"), None)
    note = f"*Not run in this build ({why})" + (f"; build with `--flags {flag}` to run it.*" if flag else ".*")
    return nbformat.v4.new_markdown_cell(note, metadata={"course_note": True})


def typeset(cell, failed: list[str], classes: dict):
    "The cell's markdown (source, or markdown outputs) with its math as MathML and show_doc's output as API reference"
    if cell.cell_type == "markdown":
        cell.source = markdown_math(cell.source, failed)
        return cell
    for o in cell.get("outputs", []):
        md = o.get("data", {}).get("text/markdown")
        if md is None: continue
        if is_show_doc_markdown(md): o["data"] = {"text/html": api_reference_html(md, classes)}
        else: o["data"]["text/markdown"] = markdown_math(md, failed)
    return cell


def display_cells(c) -> list:
    "What the page shows for one code cell: nothing, a folded import, or the cell (with a note if it did not run)"
    d, skipped = directives(c.source), unmark(c)
    if is_hidden(c): return []
    if is_import_only(c.source) and not c.get("outputs"): return [folded_imports(c.source)]
    c.source = strip_directives(c.source)
    if not c.source.strip() and not c.get("outputs"): return []
    if d.get("output") == "false": c.outputs = []
    if d.get("echo") == "false" or is_show_doc(c.source): c.metadata.setdefault("tags", []).append("remove_input")
    return ([skipped_note(skipped)] if skipped else []) + [c]


def for_display(nb, teacher: bool = False) -> tuple:
    "The notebook as a reader sees it, and the formulas that did not convert"
    failed, classes = [], {}
    nb = for_variant(nb, teacher)
    for c in nb.cells:
        if c.cell_type == "code": classes.update(class_fields(strip_directives(c.source)))
    cells = []
    for c in nb.cells:
        cells += [c] if c.cell_type != "code" else display_cells(c)
    nb.cells = [typeset(c, failed, classes) for c in cells]
    return nb, failed


def count_images(nb) -> int:
    "The number of image outputs (png, jpeg, svg) in a notebook"
    return sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
               if any(k in o.get("data", {}) for k in IMAGE_KEYS))


def has_outputs(nb) -> bool:
    "Whether any code cell of the notebook carries outputs"
    return any(c.get("outputs") for c in nb.cells if c.cell_type == "code")


def source_hash(nb_path: Path, run_flags: set[str], lib: Path) -> str:
    "A hash of the notebook's sources, the library's sources and the flags: a changed hash means run it again"
    h = hashlib.sha256()
    for c in nbformat.read(nb_path, as_version=4).cells:
        h.update(c.cell_type.encode())
        h.update(c.source.encode())
    for p in sorted(lib.rglob("*.py")) if lib.exists() else []:
        h.update(str(p.relative_to(lib)).encode())
        h.update(p.read_bytes())
    h.update(" ".join(sorted(run_flags)).encode())
    return h.hexdigest()[:16]


def kernel_env() -> None:
    "The environment the kernels inherit: offline hub, inline plots, fixed hash seed"
    for k, v in dict(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONHASHSEED="0",
                     MPLBACKEND="module://matplotlib_inline.backend_inline").items():
        os.environ.setdefault(k, v)


def execute(nb, cwd: Path, timeout: int, kernel: str) -> tuple[float, str | None]:
    "Run the notebook in a fresh kernel with `cwd` as its folder; (seconds, error text or None)"
    ep = ExecutePreprocessor(timeout=timeout, kernel_name=kernel, skip_cells_with_tag=SKIP_TAG)
    t0, err = time.perf_counter(), None
    try: ep.preprocess(nb, {"metadata": {"path": str(cwd)}})
    except CellExecutionError as e: err = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
    except Exception as e: err = f"{type(e).__name__}: {e}"
    return time.perf_counter() - t0, err


# --- pages ---------------------------------------------------------------------------------------------------------

_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block extra_css %}<style>{{ resources.course_css }}</style>{% endblock extra_css %}
{%- block body_header -%}
<body class="jp-Notebook" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
<div class="course-layout"><!--course-sidebar--><main class="course-main"><!--course-top-->
{%- endblock body_header -%}
{% block body_footer %}<!--course-bottom--></main></div></body>{% endblock body_footer %}
"""


def render(nb, title: str) -> str:
    "The notebook as a page of nbconvert's lab template, with no script from the network (output images are inline)"
    from jinja2 import DictLoader
    from traitlets.config import Config
    cfg = Config()
    cfg.TagRemovePreprocessor.enabled = True
    cfg.TagRemovePreprocessor.remove_input_tags = {"remove_input"}
    exporter = HTMLExporter(config=cfg, template_name="lab", extra_loaders=[DictLoader({"course.html.j2": _TEMPLATE})],
                            template_file="course.html.j2")  # embed_images would mangle MathML
    exporter.exclude_input_prompt = exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}, "course_css": CSS.read_text()})
    return body


def page_toc(page: str) -> list[tuple[str, str]]:
    "The (anchor, text) of each second-level heading of a rendered page"
    return [(a, re.sub(r"<[^>]+>", "", t).strip()) for a, t in
            re.findall(r'<h2 id="([^"]+)">(.*?)<a class="anchor-link"', page, flags=re.S)]


def sidebar_html(records: list[dict], current: str | None, toc, teacher: bool) -> str:
    "The sidebar: the course map, then every page in reading order under its group, this page's sections below it"
    out = [f'<nav class="course-sidebar"><a class="course-title" href="index.html">{html.escape(TITLE)}</a>']
    if teacher: out.append('<span class="edition">teacher edition: solutions shown</span>')
    group = None
    for r in records:
        g = GROUPS.get("index" if r["name"] == "index" else r["name"][:1], "More")
        if g != group:
            out.append(("</ol>" if group else "") + f"<h4>{html.escape(g)}</h4><ol>")
            group = g
        here = r["page"] == current
        sub = "".join(f'<li><a href="#{html.escape(a)}">{html.escape(t)}</a></li>' for a, t in toc) if here else ""
        out.append(f'<li class="{"current" if here else ""}"><a href="{r["page"]}">{html.escape(r["title"])}</a>'
                   + (f'<ul class="toc">{sub}</ul>' if sub else "") + "</li>")
    return "".join(out) + ("</ol>" if group else "") + "</nav>"


def nav_html(prev: dict | None, nxt: dict | None, where: str = "top") -> str:
    "The bar of links (previous, course map, next) at the top and bottom of each page"
    p = f'<a href="{prev["page"]}">&larr; {html.escape(prev["title"])}</a>' if prev else "<span></span>"
    n = f'<a href="{nxt["page"]}">{html.escape(nxt["title"])} &rarr;</a>' if nxt else "<span></span>"
    return f'<nav class="course-nav {where}">{p}<a href="index.html">Course map</a>{n}</nav>'


def finish_page(page: str, records: list[dict], i: int, teacher: bool) -> str:
    "A rendered page with its sidebar, navigation, failure banner and download link; links to notebooks made local"
    rec = records[i]
    prev, nxt = (records[i - 1] if i else None), (records[i + 1] if i + 1 < len(records) else None)
    fail = (f'<div class="course-fail">This notebook failed while building: {html.escape(rec["error"])}</div>'
            if rec["error"] else "")
    down = (f'<p class="course-download"><a href="notebooks/{rec["name"]}.ipynb" download>Download this notebook</a>'
            f' ({"with" if teacher else "without"} the exercises\' solutions)</p>')
    page = page.replace("<!--course-sidebar-->", sidebar_html(records, rec["page"], page_toc(page), teacher), 1)
    page = page.replace("<!--course-top-->", nav_html(prev, nxt) + fail + down, 1)
    page = page.replace("<!--course-bottom-->", nav_html(prev, nxt, "bottom"), 1)
    for r in records:
        page = page.replace(f'href="{r["name"]}.ipynb', f'href="{r["page"]}')
    return page


def course_map_markdown(nbs: Path) -> str:
    "The section `## The course` of nbs/index.ipynb (the course map), or '' if there is none"
    p = nbs / "index.ipynb"
    if not p.exists(): return ""
    text = "\n\n".join(c.source for c in nbformat.read(p, as_version=4).cells if c.cell_type == "markdown")
    m = re.search(r"^## The course\b.*?(?=^## |\Z)", text, flags=re.M | re.S)
    return m.group(0) if m else ""


def _status(r: dict) -> str:
    "How a notebook's outputs came to be, for the contents list"
    if r["error"]: return "failed"
    if r["executed"] or r["reused"]: return f'ran {r["seconds"]:.0f} s in this build'
    return "committed outputs" if r["outputs"] else "not run"


def index_html(records: list[dict], course_map: str, teacher: bool) -> tuple[str, list[str]]:
    "The course's first page (the course map, then every page in reading order), and the formulas that failed"
    failed = []
    md = lambda text: markdown2html(markdown_math(text, failed)) if text else ""
    rows = "".join(f'<li><a href="{r["page"]}">{html.escape(r["title"])}</a> <span class="meta">({r["name"]}, '
                   f'{r["images"]} plot{"s" * (r["images"] != 1)}, {_status(r)})</span>'
                   f'<div class="sum">{md(r["summary"])}</div></li>' for r in records)
    cmap = md(course_map)
    body = (f'<main class="course-main course-index"><h1>{html.escape(TITLE)}</h1><div class="course-map">{cmap}</div>'
            f'<h2>Every page, in reading order</h2><ol class="chapters">{rows}</ol><p class="meta">Built '
            f'{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())} by <code>python tools/build_course.py'
            f'{" --teacher" if teacher else ""}</code>.</p></main>')
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width='
            f'device-width,initial-scale=1"><title>{html.escape(TITLE)}</title><style>{CSS.read_text()}</style></head>'
            f'<body><div class="course-layout">{sidebar_html(records, "index.html", [], teacher)}{body}</div>'
            f"</body></html>\n"), failed


def reader_notebook(nb, teacher: bool):
    "The notebook a build's readers download: the variant's exercise cells, outputs kept, the build's marks removed"
    nb = for_variant(nb, teacher)
    for c in nb.cells:
        if c.cell_type == "code": unmark(c)
    nb.metadata.pop("course", None)
    return nb


# --- building ------------------------------------------------------------------------------------------------------

def run_notebook(path: Path, flags: set[str], all_flags: set[str], cache: Path | None, opts: dict) -> tuple:
    "The notebook (executed, reused from `cache`, or as committed) and its record"
    nb = nbformat.read(path, as_version=4)
    title, summary = title_and_summary(nb)
    rec = dict(name=path.stem, page=page_name(path.stem), title=title or path.stem, summary=summary, executed=False,
               reused=False, outputs=has_outputs(nb), seconds=0.0, skipped_cells=mark_skipped(nb, flags, all_flags),
               images=0, exercises=sum(exercise_role(c) == "check" for c in nb.cells), error=None, math_failed=[])
    key = source_hash(path, flags, opts["lib"])
    cached = cache / f"{path.stem}.{key}.ipynb" if cache else None
    if opts["execute"] and opts["reuse"] and cached and cached.exists():
        nb = nbformat.read(cached, as_version=4)
        rec.update(reused=True, seconds=nb.metadata.get("course", {}).get("seconds", 0.0))
    elif opts["execute"]:
        if not opts["quiet"]: print(f"running {path.name} ...", flush=True)
        rec["seconds"], rec["error"] = execute(nb, path.parent, opts["timeout"], opts["kernel"])
        rec["executed"] = True
        nb.metadata["course"] = {"seconds": rec["seconds"]}
        if cached:
            for old in cache.glob(f"{path.stem}.*.ipynb"): old.unlink()
            if rec["error"] is None: nbformat.write(nb, cached)
    return nb, rec


def _say(rec: dict) -> str:
    "One line about a built notebook"
    if rec["error"]: state = "FAILED: " + rec["error"]
    elif rec["reused"]: state = "reused"
    else: state = f'{rec["seconds"]:.1f} s' if rec["executed"] else "as committed"
    math = f', {len(rec["math_failed"])} formula(s) NOT CONVERTED' if rec["math_failed"] else ""
    return f"  {rec['name']}: {state}, {rec['images']} plot(s), {rec['skipped_cells']} cell(s) not run{math}"


def _check_flags(flags: set[str], nbs: Path) -> set[str]:
    "All of the project's test flags, after refusing unknown ones in `flags`"
    all_flags = tst_flags(nbs.parent if (nbs.parent / "pyproject.toml").exists() else ROOT)
    unknown = set(flags) - all_flags
    if unknown: raise SystemExit(f"unknown flag(s) {sorted(unknown)}: the flags are {sorted(all_flags)}")
    return all_flags


def write_pages(pages: list, records: list[dict], out: Path, nbs: Path, teacher: bool) -> None:
    "Every page, the reader notebooks, index.html (the course map) and course.json"
    (out / "notebooks").mkdir(exist_ok=True)
    for i, (nb, reader) in enumerate(pages):
        page = finish_page(render(nb, records[i]["title"]), records, i, teacher)
        (out / records[i]["page"]).write_text(page, encoding="utf-8")
        nbformat.write(reader, str(out / "notebooks" / f"{records[i]['name']}.ipynb"))
    index, failed = index_html(records, course_map_markdown(nbs), teacher)
    (out / "index.html").write_text(index, encoding="utf-8")
    meta = {"title": TITLE, "teacher": teacher, "course_map_math_failed": failed, "chapters": records}
    (out / "course.json").write_text(json.dumps(meta, indent=2) + "\n")


def build(nbs: Path = ROOT / "nbs", out: Path | None = None, only: list[str] | None = None, flags=frozenset(),
          execute_cells: bool = True, reuse: bool = False, timeout: int = 1200, kernel: str = "python3",
          lib: Path = ROOT / "adaptnb", quiet: bool = False, teacher: bool = False) -> list[dict]:
    "Execute (or take as committed) and render the notebooks of `nbs` into `out`; one record per notebook"
    import copy
    nbs = Path(nbs).resolve()
    out = Path(out or ROOT / ("_site-teacher" if teacher else "_site")).resolve()
    files = chapters(nbs, only)
    if not files: raise SystemExit(f"no notebooks found in {nbs}" + (f" matching {only}" if only else ""))
    all_flags, flags = _check_flags(set(flags), nbs), set(flags)
    out.mkdir(parents=True, exist_ok=True)
    (out / ".executed").mkdir(exist_ok=True)
    kernel_env()
    opts = dict(execute=execute_cells, reuse=reuse, timeout=timeout, kernel=kernel, lib=lib, quiet=quiet)
    records, pages = [], []
    for f in files:
        nb, rec = run_notebook(f, flags, all_flags, out / ".executed", opts)
        reader = reader_notebook(copy.deepcopy(nb), teacher)
        nb, rec["math_failed"] = for_display(nb, teacher)
        rec["images"] = count_images(nb)
        records.append(rec)
        pages.append((nb, reader))
        if not quiet: print(_say(rec), flush=True)
    write_pages(pages, records, out, nbs, teacher)
    return records


def commit_outputs(nb, keep_marks: bool = False):
    "The executed notebook's outputs made fit to commit (course_outputs.py); cells that did not run keep none"
    for c in nb.cells:
        if c.cell_type != "code": continue
        ran = unmark(c) is None
        c.outputs = clean_outputs(c.outputs, keep_times="timing" in directives(c.source)) if ran else []
    nb.metadata.pop("course", None)
    nb.metadata.pop("widgets", None)  # widget state: the views are dropped, and they need a kernel anyway
    return nb


def write_outputs(nbs: Path = ROOT / "nbs", only: list[str] | None = None, flags=frozenset(), timeout: int = 1200,
                  kernel: str = "python3", quiet: bool = False) -> list[dict]:
    "Execute each notebook and write its outputs back into it (only if it ran without error); one record each"
    nbs = Path(nbs).resolve()
    files = chapters(nbs, only)
    if not files: raise SystemExit(f"no notebooks found in {nbs}" + (f" matching {only}" if only else ""))
    all_flags, flags = _check_flags(set(flags), nbs), set(flags)
    kernel_env()
    opts = dict(execute=True, reuse=False, timeout=timeout, kernel=kernel, lib=ROOT / "adaptnb", quiet=quiet)
    records = []
    for f in files:
        nb, rec = run_notebook(f, flags, all_flags, None, opts)
        if rec["error"] is None:
            try: write_notebook(commit_outputs(nb), f)
            except ValueError as e: rec["error"] = f"not written: {e}"
        records.append(rec)
        if not quiet: print(f"  {f.stem}: " + (f"FAILED, not written: {rec['error']}" if rec["error"] else
                                                f"{rec['seconds']:.1f} s, outputs written"), flush=True)
    return records


def main(argv: list[str] | None = None) -> int:
    "Command line: build the course (or write outputs) and print one line per notebook"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nbs", type=Path, default=ROOT / "nbs", help="folder of notebooks (default nbs/)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default _site/, or _site-teacher/)")
    ap.add_argument("--only", default="", help="comma-separated name prefixes of the notebooks, e.g. 20,21")
    ap.add_argument("--flags", default="", help="space- or comma-separated test flags whose cells also run, e.g. slow")
    ap.add_argument("--reuse", action="store_true", help="reuse the executed copy of notebooks that did not change")
    ap.add_argument("--no-execute", action="store_true", help="render the notebooks with their committed outputs")
    ap.add_argument("--teacher", action="store_true", help="the teacher's build: show the exercises' solutions")
    ap.add_argument("--write-outputs", action="store_true", help="execute and write outputs back into the notebooks")
    ap.add_argument("--timeout", type=int, default=1200, help="seconds one cell may run (default 1200)")
    ap.add_argument("--kernel", default="python3", help="Jupyter kernel name (default python3)")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    only = [o for o in a.only.split(",") if o] or None
    flags = set(re.split(r"[,\s]+", a.flags.strip())) - {""}
    if a.write_outputs:
        recs = write_outputs(a.nbs, only, flags, a.timeout, a.kernel)
        failed = [r["name"] for r in recs if r["error"]]
        print(f"wrote the outputs of {len(recs) - len(failed)} notebook(s) in {time.perf_counter() - t0:.0f} s"
              + (f"; FAILED: {', '.join(failed)}" if failed else ""))
        return 1 if failed else 0
    recs = build(a.nbs, a.out, only, flags, execute_cells=not a.no_execute, reuse=a.reuse, timeout=a.timeout,
                 kernel=a.kernel, teacher=a.teacher)
    failed = [r["name"] for r in recs if r["error"] or r["math_failed"]]
    out = a.out or ROOT / ("_site-teacher" if a.teacher else "_site")
    print(f"built {len(recs)} page(s) into {out}/ in {time.perf_counter() - t0:.0f} s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
