"""The offline HTML course (`python tools/build_course.py`): pages for every chapter, in reading order, with plots.

The fast tests build a small course from notebooks written here (a plot, a slow cell, a hidden cell, a failing
chapter) and the real, cheap chapter 00_core; the full build of every real chapter is `slow` (`--runslow`)."""
import json, re, subprocess, sys, textwrap, time
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BUILDER = ROOT / "tools" / "build_course.py"
sys.path.insert(0, str(ROOT / "tools"))
import build_course as bc  # noqa: E402

IMG = re.compile(r'<img[^>]+src="data:image/png;base64,[A-Za-z0-9+/=]{200,}')


def _nb(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(c[3:]) if c.startswith("md:") else nbformat.v4.new_code_cell(textwrap.dedent(c))
                for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.fixture(scope="module")
def small_course(tmp_path_factory):
    d = tmp_path_factory.mktemp("course"); nbs = d / "nbs"; nbs.mkdir()
    (d / "pyproject.toml").write_text('[tool.nbdev]\ntst_flags = "slow cuda"\n')
    nbformat.write(_nb("md:# Plots\n\n> A chapter with a plot",
                       "import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(2, 2)); ax.plot([0, 1], [1, 0]); plt.show()",
                       "#| hide\nSECRET = 'hidden-cell-text'",
                       "#| slow\nraise RuntimeError('a slow cell ran')",
                       "#| eval: false\nraise RuntimeError('an eval-false cell ran')",
                       "#| echo: false\nprint('only-the-output')",
                       "print(SECRET[::-1])"), nbs / "10_plots.ipynb")
    nbformat.write(_nb("md:# Start\n\n> The first page", "1 + 1"), nbs / "index.ipynb")
    nbformat.write(_nb("md:# Broken", "raise ValueError('chapter-breaks-here')"), nbs / "02_broken.ipynb")
    nbformat.write(_nb("md:# Ignored"), nbs / "_private.ipynb")
    out = d / "_site"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(BUILDER), "--nbs", str(nbs), "--out", str(out)], capture_output=True, text=True, timeout=300)
    return dict(out=out, nbs=nbs, proc=r, seconds=time.perf_counter() - t0)


def test_small_course_pages_and_order(small_course):
    out, r = small_course["out"], small_course["proc"]
    assert r.returncode == 1, r.stdout + r.stderr  # one chapter fails on purpose
    assert "FAILED: 02_broken" in r.stdout
    course = json.loads((out / "course.json").read_text())
    assert [c["name"] for c in course["chapters"]] == ["index", "02_broken", "10_plots"]
    idx = (out / "index.html").read_text()
    assert idx.index("Start") < idx.index("Broken") < idx.index("Plots") and "_private" not in idx
    for c in course["chapters"]: assert (out / c["page"]).exists() and c["page"] in idx


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
    broken = (out / "02_broken.html").read_text()
    assert "course-fail" in broken and "chapter-breaks-here" in broken
    assert 'href="index.html"' in page and 'href="02_broken.html"' in page  # navigation: contents and previous


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


def test_real_chapters_in_reading_order():
    names = [p.stem for p in bc.chapters(ROOT / "nbs")]
    assert names[0] == "index" or "index" not in names
    numbered = [n for n in names if n != "index"]
    assert numbered == sorted(numbered) and "00_core" in numbered


def test_real_core_chapter_builds(tmp_path):
    recs = bc.build(ROOT / "nbs", tmp_path, only=["00_core"], quiet=True)
    assert recs[0]["error"] is None and recs[0]["executed"]
    page = (tmp_path / "00_core.html").read_text()
    assert "seed_everything" in page and "AdaptnbError" in page


def test_quarto_yml_is_valid():
    q = yaml.safe_load((ROOT / "nbs" / "_quarto.yml").read_text())
    assert q["project"]["type"] == "website" and "html" in q["format"]
    assert set(q["metadata-files"]) >= {"nbdev.yml", "sidebar.yml"}


@pytest.mark.slow
def test_full_course(tmp_path):
    "Every chapter of nbs/ executes, has its page and carries its plots (minutes: every notebook runs)"
    r = subprocess.run([sys.executable, str(BUILDER), "--out", str(tmp_path)], capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    course = json.loads((tmp_path / "course.json").read_text())
    assert [c["name"] for c in course["chapters"]] == [p.stem for p in bc.chapters(ROOT / "nbs")]
    idx = (tmp_path / "index.html").read_text()
    for c in course["chapters"]:
        page = (tmp_path / c["page"]).read_text()
        assert c["page"] in idx and len(IMG.findall(page)) == c["images"]
        if c["name"].startswith("1") and c["name"][:2].isdigit() and int(c["name"][:2]) >= 10:  # course chapters all plot
            assert c["images"] >= 1, c["name"]
