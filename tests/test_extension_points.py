"""The house: every model family answers every stage's extension point, whatever was imported first; no module
finishes another module's class; no module outside a family's own branches on that family.

Each check of the registrations runs in a fresh interpreter, so that nothing an earlier test imported can hide a
missing registration or an import-order dependence.
"""
import ast, json, re, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["adaptnb.heads", "adaptnb.interpolate", "adaptnb.decide", "adaptnb.flow", "adaptnb.deploy"]

REPORT = """
import importlib, json, sys
for m in sys.argv[1:]:
    importlib.import_module(m)
from adaptnb.train import load_families
stages = [importlib.import_module(m) for m in %r]
families = load_families()
points = {f"{s.__name__}.{n}": f for s in stages for n, f in vars(s).items()
          if callable(f) and hasattr(f, "registry") and getattr(f, "on", None) in ("model", "family")}
table = {}
for name, point in sorted(points.items()):
    for fam in families:
        key = fam.model_type if point.on == "model" else type(fam)
        impl = point.dispatch(key)
        table[f"{name} / {fam.name}"] = None if impl is point.dispatch(object) else f"{impl.__module__}"
print(json.dumps({"families": [f.name for f in families], "table": table}))
""" % STAGES


def _report(*first: str) -> dict:
    "The extension-point table of a fresh interpreter that imported `first` before anything else"
    out = subprocess.run([sys.executable, "-c", REPORT, *first], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def plain():
    "The table after `import adaptnb` and nothing else"
    return _report("adaptnb")


def test_every_family_answers_every_extension_point(plain):
    "After `import adaptnb` and nothing else, both families answer every point of every stage"
    r = plain
    assert set(r["families"]) >= {"encoder", "causal"}
    points = {k.split(" / ")[0] for k in r["table"]}
    for p in ("adaptnb.heads.score_as_is", "adaptnb.interpolate.blend", "adaptnb.interpolate.objective",
              "adaptnb.decide.scratch", "adaptnb.decide.assess_task", "adaptnb.decide.step_seconds",
              "adaptnb.decide.decide_defaults", "adaptnb.flow.zero_shot", "adaptnb.flow.flow_sizes",
              "adaptnb.flow.audit_view", "adaptnb.flow.demo_spec", "adaptnb.deploy.export_model",
              "adaptnb.deploy.predictor"):
        assert p in points, f"{p} is not declared as an extension point"
    missing = [k for k, v in r["table"].items() if v is None]
    assert not missing, f"no implementation registered for: {missing}"


@pytest.mark.parametrize("first", ["adaptnb.llm", "adaptnb.deploy"])
def test_import_order_changes_nothing(first, plain):
    "Whichever module comes first, every point resolves to the same implementation"
    assert _report(first)["table"] == plain["table"]


def _package_sources():
    return {str(p.relative_to(ROOT / "adaptnb")): p.read_text()
            for p in sorted((ROOT / "adaptnb").rglob("*.py")) if p.name != "_modidx.py"}


def test_no_module_finishes_another_modules_class():
    "No `Imported.attr = ...` onto a class imported from another adaptnb module"
    bad = []
    for name, src in _package_sources().items():
        tree = ast.parse(src)
        imported = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                    and (n.level or "adaptnb" in (n.module or "")) for a in n.names}
        for n in ast.walk(tree):
            targets = n.targets if isinstance(n, ast.Assign) else []
            for t in [e for t0 in targets for e in (t0.elts if isinstance(t0, (ast.Tuple, ast.List)) else [t0])]:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id in imported \
                        and t.value.id[:1].isupper():
                    bad.append(f"{name}:{n.lineno} assigns {t.value.id}.{t.attr}")
    assert not bad, bad


def test_no_family_branch_outside_the_family():
    "Only llm.py names the causal family in a condition; every other module asks an extension point"
    pat = re.compile(r"isinstance\([^)]*CausalLM\b|== *['\"]causal['\"]|!= *['\"]causal['\"]|is CAUSAL\b")
    bad = [f"{name}:{i}" for name, src in _package_sources().items() if name != "llm.py"
           for i, line in enumerate(src.splitlines(), 1) if pat.search(line)]
    assert not bad, bad


def test_no_module_is_found_through_a_string():
    "`train` declares the other families through an entry-point group, not a module name it imports"
    src = "\n".join(p.read_text() for p in sorted((ROOT / "adaptnb" / "train").glob("*.py")))
    assert "def family_for" in src
    assert "import_module" not in src and not re.search(r"[\"']adaptnb\.llm[\"']", src)
    assert '[project.entry-points."adaptnb.families"]' in (ROOT / "pyproject.toml").read_text()
