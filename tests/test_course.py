"""The offline course (`python tools/build_course.py`): pages in reading order, equations typeset, outputs committed,
exercises with checks, the course map.

Fast tests: a small course written here is executed and built (a plot, TeX, flagged, hidden and import cells, a
`show_doc`, an exercise); a tiny notebook's outputs are written back (`--write-outputs`) and `nbdev-clean` must keep
them; the real chapters are built from their committed outputs, for the student and the teacher, and a real browser
(chromium, network refused) reads one offline; committed outputs are checked fit to commit; each chapter's exercise
checks fail without the solutions and pass with them (chapter 21's with its chapter: `slow`, and `nbdev-test`).
`slow` (`--runslow`): the whole course executed, and chapter 21's exercises after the whole chapter.
"""
import base64, io, json, re, shutil, subprocess, sys, textwrap, time
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BUILDER = ROOT / "tools" / "build_course.py"
sys.path.insert(0, str(ROOT / "tools"))
import build_course as bc  # noqa: E402
import course_exercises as cx  # noqa: E402
import course_outputs as co  # noqa: E402

IMG = re.compile(r'<img[^>]+src="data:image/png;base64,[A-Za-z0-9+/=]{200,}')
CHAPTERS = ["20_case_study", "21_vision", "22_llm", "23_lineage"]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def _nb(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(c[3:]) if c.startswith("md:")
                else nbformat.v4.new_code_cell(textwrap.dedent(c)) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


SHOW_DOC = '''from nbdev.showdoc import show_doc
def scale(x: float,  # the number to scale
          by: float = 2.0,  # the factor
         ) -> float:
    "x times `by`"
    return x * by

from dataclasses import dataclass
@dataclass
class Point:
    "A point of the plane"
    x: float  # the abscissa
    y: float = 0.0  # the ordinate'''


@pytest.fixture(scope="module")
def small_course(tmp_path_factory):
    d = tmp_path_factory.mktemp("course")
    nbs = d / "nbs"
    nbs.mkdir()
    (d / "pyproject.toml").write_text('[tool.nbdev]\ntst_flags = "slow cuda"\n')
    nbformat.write(_nb("md:# Plots\n\n> A chapter with a plot\n> and $x^2$ in its summary",
                       "md:Inline $\\theta(\\lambda) = \\theta_0 + \\lambda\\tau$ and `$code$`, then\n\n"
                       "$$S = \\frac{1}{N}\\sum_i L_i$$",
                       "#| export\nimport os, json",
                       "import textwrap",
                       "import matplotlib.pyplot as plt\nplt.subplots(figsize=(2, 2))[1].plot([0, 1])\nplt.show()",
                       "#| hide\nSECRET = 'hidden-cell-text'",
                       "#| slow\nraise RuntimeError('a slow cell ran')",
                       "#| eval: false\nraise RuntimeError('an eval-false cell ran')",
                       "#| echo: false\nprint('only-the-output')",
                       "print(SECRET[::-1])",
                       SHOW_DOC, "show_doc(scale)", "show_doc(Point)",
                       "md:## Exercises\n\nWhat is six times seven?",
                       "#| starter\nanswer = None  # your code here",
                       "#| solution\nanswer = 6 * 7  # the-solution",
                       "#| check\nassert answer == 42, 'not yet'\nprint('check', 'passed')"), nbs / "10_plots.ipynb")
    nbformat.write(_nb("md:# Start\n\n> The first page", "md:## The course\n\n| chapter | formula |\n|---|---|\n"
                       "| 10_plots | $a \\mid b$ |", "md:## After", "1 + 1"), nbs / "index.ipynb")
    nbformat.write(_nb("md:# Broken", "raise ValueError('chapter-breaks-here')"), nbs / "02_broken.ipynb")
    nbformat.write(_nb("md:# Ignored"), nbs / "_private.ipynb")
    out = d / "_site"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(BUILDER), "--nbs", str(nbs), "--out", str(out)], capture_output=True,
                       text=True, timeout=300)
    return dict(out=out, nbs=nbs, proc=r, seconds=time.perf_counter() - t0)


def test_small_course_pages_and_order(small_course):
    out, r = small_course["out"], small_course["proc"]
    assert r.returncode == 1, r.stdout + r.stderr  # one chapter fails on purpose
    assert "FAILED: 02_broken" in r.stdout
    course = json.loads((out / "course.json").read_text())
    assert [c["name"] for c in course["chapters"]] == ["index", "02_broken", "10_plots"]
    idx = (out / "index.html").read_text()
    side = idx[idx.index('class="course-sidebar"'):idx.index("</nav>")]
    assert side.index("Start") < side.index("Broken") < side.index("Plots") and "_private" not in idx
    for c in course["chapters"]: assert (out / c["page"]).exists() and c["page"] in side
    assert course["chapters"][0]["page"] == "readme.html"
    cmap = idx[idx.index('class="course-map"'):]
    assert "<table>" in cmap and "<math" in cmap and "After" not in cmap  # the course map: its section only


def test_small_course_plot_and_directives(small_course):
    out = small_course["out"]
    page = (out / "10_plots.html").read_text()
    assert len(IMG.findall(page)) == 1
    assert "hidden-cell-text" not in page and "txet-llec-neddih" in page  # the hidden cell ran but is not shown
    assert "a slow cell ran" in page and "Not run in this build (slow)" in page and "--flags slow" in page
    assert "RuntimeError: a slow cell ran" not in page and "an eval-false cell ran" in page
    assert page.count("only-the-output") == 1  # `echo: false`: the output, not the code
    assert "#|" not in page
    rec = {c["name"]: c for c in json.loads((out / "course.json").read_text())["chapters"]}
    assert rec["10_plots"]["images"] == 1 and rec["10_plots"]["skipped_cells"] == 2 and rec["10_plots"]["error"] is None
    assert rec["10_plots"]["exercises"] == 1 and rec["10_plots"]["math_failed"] == []
    broken = (out / "02_broken.html").read_text()
    assert "course-fail" in broken and "chapter-breaks-here" in broken
    assert 'href="index.html"' in page and 'href="02_broken.html"' in page  # navigation: course map and previous


def test_small_course_reads_as_nbdev_docs(small_course):
    "TeX as MathML, export-only imports hidden, other imports folded, show_doc as an API reference"
    page = (small_course["out"] / "10_plots.html").read_text()
    assert page.count("<math") == 3 and 'display="block"' in page and "<mfrac>" in page  # the summary's, too
    shown = re.sub(r'alttext="[^"]*"', "", page)
    assert "$$" not in shown and "\\theta" not in shown and "$x^2$" not in shown
    assert "$code$" in page  # a code span keeps its dollars
    assert "MathJax" not in page and "require.min.js" not in page and "mermaid.esm" not in page  # no script from a CDN
    assert '<span class="nn">os</span>' not in page  # the export cell that only imports: hidden
    folded = page[page.index('<details class="course-imports">'):]
    assert '<span class="nn">textwrap</span>' in folded[:folded.index("</details>")]  # a plain import cell: folded
    api = page[page.index('class="api-ref"'):]
    assert "def scale(x: float, by: float = 2.0) -&gt; float" in api and "the factor" in api and "<table" in api
    assert "show_doc(scale)" not in page  # the call is not shown, only its reference
    point = page[page.index('id="Point"'):]
    assert "class Point(x: float, y: float = 0.0)" in point and "the abscissa" in point  # a dataclass's field docs


def test_student_and_teacher_builds(small_course, tmp_path):
    out = small_course["out"]
    page = (out / "10_plots.html").read_text()
    assert "the-solution" not in page and "your code here" in page and "not yet" in page
    assert "check passed" not in page  # the check ran (with the solution) but a student sees no verdict
    reader = nbformat.read(out / "notebooks" / "10_plots.ipynb", as_version=4)
    assert not any("the-solution" in c.source for c in reader.cells)
    assert any("#| starter" in c.source for c in reader.cells)
    recs = bc.build(small_course["nbs"], tmp_path / "t", only=["10"], execute_cells=False, teacher=True, quiet=True)
    tpage = (tmp_path / "t" / recs[0]["page"]).read_text()
    assert "the-solution" in tpage and "your code here" not in tpage and "teacher edition" in tpage


def test_reuse_skips_unchanged(small_course, tmp_path):
    nbs = small_course["nbs"]
    recs = bc.build(nbs, small_course["out"], only=["10"], reuse=True, quiet=True)
    assert recs[0]["reused"] and not recs[0]["executed"]
    recs = bc.build(nbs, tmp_path / "site", only=["10"], reuse=True, quiet=True)  # a fresh folder has no cache
    assert recs[0]["executed"] and not recs[0]["reused"]


def test_bad_flag_is_refused(small_course, tmp_path):
    with pytest.raises(SystemExit, match="unknown flag"):
        bc.build(small_course["nbs"], tmp_path / "s", flags={"fast"}, quiet=True)


def test_directive_parsing():
    assert bc.directives("#| slow\n#|eval: false\nx = 1\n#| hide") == {"slow": "", "eval": "false"}
    assert bc.strip_directives("#| export\n\ndef f(): pass") == "def f(): pass"
    assert bc.is_import_only("#| export\nimport os\nfrom a import b") and not bc.is_import_only("import os\nx = 1")
    assert bc.is_show_doc("show_doc(f)\nshow_doc(g.h)") and not bc.is_show_doc("show_doc(f); x = 1")


def test_math_conversion_rules():
    from course_math import markdown_math
    failed = []
    md = markdown_math("$a$, \\$5 and $5, `$b$`\n```\n$c$\n```\n| $|x|$ | y |", failed)
    assert md.count("<math") == 2 and "\\$5 and $5" in md and "`$b$`" in md and "\n$c$\n" in md and failed == []
    assert "alttext=\"&#124;x&#124;\"" in md  # a bar in TeX does not split a table row
    markdown_math("$\\notacommand{x}$", failed)
    assert failed == ["\\notacommand{x}"]  # a command latex2mathml passes through as text fails the formula
    md = markdown_math("$\\big\\langle a, b \\big\\rangle$ and $T = \\arg\\min_T x$", failed)
    assert md.count("<math") == 2 and "&#x027E8;" in md and "<mi>arg</mi>" in md and len(failed) == 1


# --- committed outputs -----------------------------------------------------------------------------------------------

def _png(size=(400, 300)):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(size[0] / 100, size[1] / 100), dpi=100)
    ax.plot(range(50), [i * i for i in range(50)])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def test_output_cleaning_rules():
    assert co.scrub_text("loaded in 24.5 s, 6 steps, 12ms, 3.1 it/s") == "loaded in … s, 6 steps, … ms, … it/s"
    assert co.scrub_text("took 2 s", keep_times=True) == "took 2 s"
    assert co.scrub_text("/tmp/tmpab12cd_x/run") == "/tmp/tmpXXXXXXXX/run"
    assert co.scrub_text("ProbeFit(seconds=0.862, l2=0.1) {'eval_runtime': '0.2868', 'eval_loss': '0.11'}") == \
        "ProbeFit(seconds=…, l2=0.1) {'eval_runtime': '…', 'eval_loss': '0.11'}"
    assert co.scrub_text("runs/20261202-103711-full") == "runs/YYYYMMDD-HHMMSS-full"
    from PIL import Image
    png = _png()
    small = co.compress_png(png)
    assert len(small) < len(png) and Image.open(io.BytesIO(base64.b64decode(small))).mode == "P"
    assert len(co.compress_png(_png((1600, 1200)), limit=20_000)) <= 20_000  # halved until under the limit
    cut = co.cut_text("".join(f"line {i}\n" for i in range(100_000)), 10_000)
    assert len(cut) < 12_000 and cut.startswith("line 0\n") and cut.endswith("line 99999\n")
    assert "cut by build_course" in cut
    assert co.clean_output({"output_type": "stream", "name": "stderr", "text": "100%|###| 5/5"}) is None
    widget = {"output_type": "display_data", "data": {co.WIDGET: {}, "text/plain": "x"}, "metadata": {}}
    assert co.clean_output(widget) is None


def test_write_outputs_keeps_through_nbdev_clean(tmp_path):
    "--write-outputs, tiny notebook: no stderr, no wall time (bar timing cells), long output cut; nbdev-clean keeps it"
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    (tmp_path / "pyproject.toml").write_text('[tool.nbdev]\ntst_flags = "slow cuda"\n')
    path = nbs / "30_out.ipynb"
    nbformat.write(_nb("md:# Out", "import sys\nprint('took 1.5 s')\nprint('progress', file=sys.stderr)",
                       "#| timing\nprint('kept 2.5 s')", "print('x' * 300_000)", "#| slow\nprint('slow ran')", "6 * 7"),
                   path)
    recs = bc.write_outputs(nbs, quiet=True)
    assert recs[0]["error"] is None, recs[0]["error"]
    text = path.read_bytes()
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].outputs[0]["text"] == "took … s\n" and len(code[0].outputs) == 1  # no stderr
    assert code[1].outputs[0]["text"] == "kept 2.5 s\n"
    big = code[2].outputs[0]["text"]
    assert co.LIMIT // 2 < len(big) < co.LIMIT and "cut by build_course" in big
    assert code[3].outputs == [] and code[4].outputs[0]["data"]["text/plain"] == "42"
    assert all(c.execution_count is None for c in code) and "widgets" not in nb.metadata
    subprocess.run([str(Path(sys.executable).with_name("nbdev-clean")), "--fname", str(path)], cwd=ROOT, check=True)
    assert path.read_bytes() == text, "nbdev-clean changed the written notebook"


def _notebooks_with_outputs():
    return [p for p in bc.chapters(ROOT / "nbs") if bc.has_outputs(nbformat.read(p, as_version=4))]


def test_chapters_carry_outputs():
    "Every chapter and module notebook is committed with its outputs (the index is text only)"
    want = {p.stem for p in bc.chapters(ROOT / "nbs")} - {"index"}
    have = {p.stem for p in _notebooks_with_outputs()}
    assert set(CHAPTERS) <= want and want <= have, f"{sorted(want - have)}: run tools/build_course.py --write-outputs"


@pytest.mark.parametrize("path", _notebooks_with_outputs(), ids=lambda p: p.stem)
def test_committed_outputs_fit_to_commit(path, tmp_path):
    "Committed outputs: no stderr, no widget view, at most 200 kB, palette PNGs, no wall time; nbdev-clean keeps them"
    from PIL import Image
    from nbdev.clean import nbdev_clean
    nb = nbformat.read(path, as_version=4)
    for i, c in enumerate(c for c in nb.cells if c.cell_type == "code"):
        timing = "timing" in bc.directives(c.source)
        for o in c.outputs:
            where = f"{path.name}, code cell {i}"
            assert len(json.dumps(o, ensure_ascii=False)) <= co.LIMIT, where
            assert o.get("name") != "stderr" and co.WIDGET not in o.get("data", {}), where
            text = o.get("text", "") + "".join(v for k, v in o.get("data", {}).items() if k.startswith("text/"))
            assert timing or co.scrub_text(text) == co.scrub_text(text, keep_times=True), f"{where}: a wall time"
            if "image/png" in o.get("data", {}):
                img = Image.open(io.BytesIO(base64.b64decode(o["data"]["image/png"])))
                assert img.mode == "P", f"{where}: PNG not compressed"
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    nbdev_clean(fname=str(copy))
    assert copy.read_bytes() == path.read_bytes(), f"nbdev-clean changes {path.name}"


# --- the real chapters, from their committed outputs ----------------------------------------------------------------

@pytest.fixture(scope="module")
def real_course(tmp_path_factory):
    out = tmp_path_factory.mktemp("real")
    recs = bc.build(ROOT / "nbs", out / "student", only=["index", "20", "21", "22", "23"], execute_cells=False, quiet=True)
    trecs = bc.build(ROOT / "nbs", out / "teacher", only=["21"], execute_cells=False, teacher=True, quiet=True)
    return dict(out=out / "student", teacher=out / "teacher", recs={r["name"]: r for r in recs}, trecs=trecs)


def test_real_chapters_from_committed_outputs(real_course):
    out, recs = real_course["out"], real_course["recs"]
    for name in CHAPTERS:
        r = recs[name]
        page = (out / r["page"]).read_text()
        assert r["error"] is None and r["math_failed"] == [] and r["outputs"], name
        assert r["images"] >= 1 and len(IMG.findall(page)) == r["images"], name
        assert page.count("<math") > 5 and 2 <= r["exercises"] <= 4, name
        assert "#| solution" not in page and "your code here" in page, name
        student = nbformat.read(out / "notebooks" / f"{name}.ipynb", as_version=4)
        assert not any(bc.exercise_role(c) == "solution" for c in student.cells), name
    tpage = (real_course["teacher"] / "21_vision.html").read_text()
    solution = "a confident mistake costs more than doubt"  # a comment of exercise 2's solution
    assert solution in tpage and "your code here" not in tpage and solution not in (out / "21_vision.html").read_text()


def test_course_map_is_the_index(real_course):
    idx = (real_course["out"] / "index.html").read_text()
    cmap = idx[idx.index('class="course-map"'):idx.index("Every page, in reading order")]
    assert "laptop CPU" in cmap and "read first" in cmap and "formula checked numerically" in cmap
    rows = re.findall(r"<tr>(.*?)</tr>", cmap, flags=re.S)[1:]
    assert [re.search(r"<code>(\d\d_\w+)</code>", r).group(1) for r in rows] == CHAPTERS
    for r in rows:
        cells = re.findall(r"<td>(.*?)</td>", r, flags=re.S)
        assert re.search(r"\d+ (s|min)", cells[3]), cells[3]  # a measured time
        assert "<math" in cells[4], cells[4]  # the formula, typeset
    side = idx[idx.index('class="course-sidebar"'):]
    assert side.index("Case study") < side.index("Vision") < side.index("causal language model")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Debian chromium is not installed at {CHROMIUM} "
                    "(apt-get install -y chromium): real-browser test skipped")
def test_chapter_typeset_offline_in_a_real_browser(real_course, tmp_path):
    "Chromium, every request but file: refused, opens chapter 21: no TeX left in the text, MathML laid out; screenshot"
    pw = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")
    refused = []
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:"))
                   else (refused.append(r.request.url), r.abort()))
        page.goto((real_course["out"] / "21_vision.html").as_uri())
        page.wait_for_load_state("load")
        text = page.evaluate("""() => { const m = document.querySelector('main').cloneNode(true);
                                        m.querySelectorAll('pre, code:not(.tex-error)').forEach(e => e.remove());
                                        return m.innerText; }""")  # the prose: code may hold backslashes
        maths = page.evaluate("""() => [...document.querySelectorAll('math')].map(m => ({
                                     mathml: m instanceof MathMLElement, w: m.getBoundingClientRect().width,
                                     h: m.getBoundingClientRect().height}))""")
        frac = page.evaluate("""() => { const f = document.querySelector('math mfrac');
                                       return f.firstElementChild.getBoundingClientRect().bottom
                                              <= f.lastElementChild.getBoundingClientRect().top + 1; }""")
        page.get_by_text("Each class set is a task").scroll_into_view_if_needed()
        shot = tmp_path / "course-21_vision.png"
        page.screenshot(path=str(shot))
        browser.close()
    keep = ROOT / "bench" / "results" / "course-21_vision.png"
    keep.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, keep)
    print(f"\n{len(maths)} formulas; screenshot: {shot} (copied to {keep})")
    assert refused == [], refused
    tex = re.findall(r".{0,30}\\[A-Za-z]+.{0,30}", text)  # any raw TeX command
    assert "$$" not in text and not tex, tex[:3]
    assert len(maths) > 20 and all(m["mathml"] and m["w"] > 0 and m["h"] > 0 for m in maths)
    assert frac, "the fraction's numerator is not above its denominator: MathML not laid out"


# --- exercises -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CHAPTERS)
def test_exercise_checks_fail_without_the_solutions(name):
    results = cx.run_exercises(nbformat.read(ROOT / "nbs" / f"{name}.ipynb", as_version=4), teacher=False)
    assert 2 <= len(results) <= 4
    for r in results: assert not r["passed"] and r["error"] == "AssertionError" and r["message"], (name, r)


@pytest.mark.parametrize("name", ["20_case_study", "22_llm", "23_lineage"])
def test_exercise_checks_pass_with_the_solutions(name):
    results = cx.run_exercises(nbformat.read(ROOT / "nbs" / f"{name}.ipynb", as_version=4), teacher=True)
    assert results and all(r["passed"] for r in results), results


@pytest.mark.slow
def test_chapter_21_exercises_after_the_chapter():
    "Chapter 21's exercises use its models: the whole chapter runs first (about twenty seconds)"
    nb = nbformat.read(ROOT / "nbs" / "21_vision.ipynb", as_version=4)
    assert all(r["passed"] for r in cx.run_exercises(nb, teacher=True, full=True))
    assert not any(r["passed"] for r in cx.run_exercises(nb, teacher=False, full=True))


def test_real_chapters_in_reading_order():
    names = [p.stem for p in bc.chapters(ROOT / "nbs")]
    assert names[0] == "index" or "index" not in names
    numbered = [n for n in names if n != "index"]
    assert numbered == sorted(numbered) and "00_core" in numbered


def test_quarto_yml_is_valid():
    q = yaml.safe_load((ROOT / "nbs" / "_quarto.yml").read_text())
    assert q["project"]["type"] == "website" and "html" in q["format"]
    assert set(q["metadata-files"]) >= {"nbdev.yml", "sidebar.yml"}
    assert q["format"]["html"]["html-math-method"] == "mathml"  # nbdev-docs typesets offline too


@pytest.mark.slow
def test_full_course(tmp_path):
    "Every notebook of nbs/ executes and has its page with its plots; the teacher's build too (minutes)"
    for extra, out in (([], tmp_path / "s"), (["--teacher", "--reuse"], tmp_path / "s")):
        r = subprocess.run([sys.executable, str(BUILDER), "--out", str(out), *extra], capture_output=True, text=True,
                           timeout=3600)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        course = json.loads((out / "course.json").read_text())
        assert [c["name"] for c in course["chapters"]] == [p.stem for p in bc.chapters(ROOT / "nbs")]
        idx = (out / "index.html").read_text()
        for c in course["chapters"]:
            page = (out / c["page"]).read_text()
            assert c["page"] in idx and len(IMG.findall(page)) == c["images"] and not c["math_failed"], c["name"]
            if c["name"][:2] in ("20", "21", "22", "23"): assert c["images"] >= 1, c["name"]


@pytest.mark.slow
def test_write_outputs_is_deterministic(tmp_path):
    "Writing chapter 21's outputs twice gives the same bytes (about forty seconds)"
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copy(ROOT / "nbs" / "21_vision.ipynb", nbs)
    runs = []
    for _ in range(2):
        assert bc.write_outputs(nbs, quiet=True)[0]["error"] is None
        runs.append((nbs / "21_vision.ipynb").read_bytes())
    assert runs[0] == runs[1]
