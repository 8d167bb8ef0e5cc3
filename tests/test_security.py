"""Security: an artifact cannot make adaptnb read or write outside its folder nor run code of its own; a spec's task
files are read where the spec names them and nowhere else; the commands write only where they are told; and nothing
adaptnb loads is ever unpickled.

"Read outside" is watched, not guessed: the files an attack points at are canaries, copies of real artifact files (so
that reading one would succeed), whose access time is set to 1970; any read of them moves it (relatime)."""
import hashlib, json, os, re, shutil, subprocess, sys, textwrap
from pathlib import Path
import pytest
import torch

from adaptnb.core import AdaptnbError, MultiTaskModel
from adaptnb.deploy import CARD, HEADS, MANIFEST, export, load, load_artifact
from conftest import main_cli

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ADAPTNB_NO_PROGRESS="1")
TRAIN = ["--task", "news_topic", "--max-per-class", "20", "--max-steps", "4", "--checkpoint-every", "4",
         "--eval-every", "4", "--batch-size", "8", "--max-length", "32"]


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    "A small real artifact: the default encoder with a seeded random head"
    m = MultiTaskModel.from_pretrained("default")
    torch.manual_seed(0)
    m.add_head("news_topic", ["business", "sport", "politics"], 0.1 * torch.randn(3, m.hidden_size))
    return export(m, tmp_path_factory.mktemp("sec") / "art")


# --- an artifact stays in its folder ---------------------------------------------------------------------------

def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _never_read(*ps: Path):
    "Set the access time of `ps` to 1970, so that any later read of them shows"
    for p in ps:
        os.utime(p, (0, p.stat().st_mtime))


def _were_read(ps) -> list[str]:
    return [p.name for p in ps if p.stat().st_atime > 0]


def _atime_shows_reads(d: Path) -> bool:
    "Whether this file system records reads in the access time (relatime, not noatime)"
    p = d / "probe"
    p.write_text("x")
    _never_read(p)
    p.read_text()
    return p.stat().st_atime > 0


def _reseal(bad: Path, name: str):
    "Record `name`'s new size and SHA-256 in the manifest, as a careful attacker would"
    meta = json.loads((bad / MANIFEST).read_text())
    meta["files"][name] = {"bytes": (bad / name).stat().st_size, "sha256": _sha(bad / name)}
    (bad / MANIFEST).write_text(json.dumps(meta))


def _manifest(bad: Path, f):
    meta = json.loads((bad / MANIFEST).read_text())
    f(meta)
    (bad / MANIFEST).write_text(json.dumps(meta))


def _json(bad: Path, name: str, **extra):
    "Add keys to one of the artifact's JSON files and reseal it"
    (bad / name).write_text(json.dumps(json.loads((bad / name).read_text()) | extra))
    _reseal(bad, name)


def _link(bad: Path, name: str, target: Path):
    if (bad / name).exists():
        (bad / name).unlink()
    (bad / name).symlink_to(target)


def _entry(bad, o):
    return json.loads((bad / MANIFEST).read_text())["files"][HEADS]


# Each attack: what it does to a copy `bad` of the artifact (with `o` the canaries' folder beside it), whether it is
# refused even with the file checks skipped (check_files=False), and what the refusal says.
ATTACKS = {
    "manifest lists ../": (lambda bad, o: _manifest(bad, lambda m: m["files"].update(
        {"../outside/heads.safetensors": _entry(bad, o)})), False, "outside its folder"),
    "manifest lists an absolute path": (lambda bad, o: _manifest(bad, lambda m: m["files"].update(
        {str(o / HEADS): _entry(bad, o)})), False, "outside its folder"),
    "manifest lists a/../../": (lambda bad, o: _manifest(bad, lambda m: m["files"].update(
        {"x/../../outside/heads.safetensors": _entry(bad, o)})), False, "outside its folder"),
    "weights named by an absolute path": (lambda bad, o: _manifest(bad, lambda m: m.update(
        weights=str(o / HEADS))), True, "outside its folder|lists no"),
    "weights named by ../": (lambda bad, o: _manifest(bad, lambda m: (m.update(weights="../outside/heads.safetensors"),
        m["files"].update({"../outside/heads.safetensors": _entry(bad, o)}))), True, "outside its folder"),
    "tokenizer.json a symlink out": (lambda bad, o: _link(bad, "tokenizer.json", o / "tokenizer.json"), True,
                                     "symbolic link"),
    "config.json a symlink out": (lambda bad, o: _link(bad, "config.json", o / "config.json"), True, "symbolic link"),
    "manifest a symlink out": (lambda bad, o: _link(bad, MANIFEST, o / MANIFEST), True, "symbolic link"),
    "unlisted symlink transformers reads": (lambda bad, o: _link(bad, "special_tokens_map.json", o / "config.json"),
                                            True, "symbolic link"),
    "unlisted tokenizer file": (lambda bad, o: (bad / "added_tokens.json").write_text("{}"), True, "not listed in"),
    "unlisted folder": (lambda bad, o: (bad / "additional_chat_templates").mkdir(), True, "not listed in"),
    "config auto_map": (lambda bad, o: _json(bad, "config.json", auto_map={"AutoModel": "modeling.Evil"}), True,
                        r"config.json asks for custom code \(auto_map\)"),
    "config custom_pipelines": (lambda bad, o: _json(bad, "config.json", custom_pipelines={"x": {"impl": "p.P"}}),
                                True, r"asks for custom code \(custom_pipelines\)"),
    "tokenizer auto_map": (lambda bad, o: _json(bad, "tokenizer_config.json",
                                                auto_map={"AutoTokenizer": ["tok.Evil", None]}), True,
                           r"tokenizer_config.json asks for custom code \(auto_map\)"),
    "code beside auto_map": (lambda bad, o: ((bad / "modeling.py").write_text(f"open({str(o / 'ran')!r}, 'w')\n"),
                                             _reseal(bad, "modeling.py"),
                                             _json(bad, "config.json", auto_map={"AutoModel": "modeling.Evil"})),
                             True, "custom code"),
}


def _tree(d: Path) -> dict:
    return {str(p.relative_to(d)): (p.is_symlink(), p.lstat().st_size, p.lstat().st_mtime_ns) for p in d.rglob("*")}


@pytest.mark.parametrize("check_files", [True, False], ids=["checked", "check_files=False"])
@pytest.mark.parametrize("attack", list(ATTACKS))
def test_crafted_artifact_is_refused_and_reads_nothing_outside(art, tmp_path, attack, check_files):
    "Each crafted artifact is refused with a line naming the problem; the files it points at are never read"
    make, unchecked_too, says = ATTACKS[attack]
    if not check_files and not unchecked_too:
        pytest.skip("a manifest entry is only read when the files are checked")
    bad, outside = tmp_path / "bad", tmp_path / "outside"
    shutil.copytree(art, bad)
    outside.mkdir()
    for n in (HEADS, "tokenizer.json", "config.json", MANIFEST):
        shutil.copy(art / n, outside / n)
    make(bad, outside)
    canaries = sorted(outside.iterdir())
    _never_read(*canaries)
    before = _tree(tmp_path)
    with pytest.raises(AdaptnbError, match=says) as e:
        load_artifact(bad, device="cpu", check_files=check_files)
    assert "\n" not in str(e.value)
    assert _tree(tmp_path) == before  # nothing written, inside the artifact or beside it
    if _atime_shows_reads(tmp_path / "outside"):
        assert _were_read(canaries) == []
    assert not (outside / "ran").exists()


def test_the_intact_artifact_loads(art, tmp_path):
    "The control: the same checks pass the artifact as exported (hidden files, such as a clone's .git, are ignored)"
    ok = shutil.copytree(art, tmp_path / "ok")
    (ok / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    assert load(ok, device="cpu").predict("a cup final")[0]["label"] in ("business", "sport", "politics")


# --- a spec reads the files it names -----------------------------------------------------------------------------

SPEC_OPENS = textwrap.dedent('''
    import json, os, sys
    from adaptnb.spec import partition
    root, opened = os.path.realpath(sys.argv[1]), set()

    def record(event, args):
        "Every file opened under `root` while the spec is read and its tasks loaded"
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            p = os.path.realpath(os.fsdecode(args[0]))
            if p.startswith(root + os.sep):
                opened.add(os.path.relpath(p, root))

    sys.addaudithook(record)
    part = partition(sys.argv[2])
    print(json.dumps({"opened": sorted(opened), "labels": [t.labels for t in part.tasks]}))
''')


def _csv(p: Path, labels: str) -> Path:
    "A small task file whose labels say which file it is"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("text,label\n" + "".join(f"example {i} of {c},{c}\n" for c in labels for i in range(12)))
    return p


@pytest.fixture
def specs(tmp_path):
    "A spec folder, a data folder beside it, a working directory, each holding a tasks.csv with its own labels"
    for where, labels in (("data", "ab"), ("specs/data", "cd"), ("work/data", "ef"), ("specs", "gh")):
        _csv(tmp_path / where / "tasks.csv", labels)
    return tmp_path


def test_spec_path_with_dotdot_reads_exactly_that_file(specs):
    "A spec naming specs/../data/tasks.csv opens the spec and that file, none of the other tasks.csv files"
    spec = specs / "specs" / "spec.yaml"
    spec.write_text(f"new: ['csv:{specs}/specs/../data/tasks.csv']\n")
    r = subprocess.run([sys.executable, "-c", SPEC_OPENS, str(specs), str(spec)], capture_output=True, text=True,
                       env=ENV, cwd=specs / "work", timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.splitlines()[-1])
    assert got == {"opened": ["data/tasks.csv", "specs/spec.yaml"], "labels": [["a", "b"]]}


def test_spec_relative_path_is_read_beside_the_spec(specs, monkeypatch):
    "csv:data/tasks.csv in specs/spec.yaml means specs/data/tasks.csv, wherever the command runs"
    from adaptnb.spec import partition
    spec = specs / "specs" / "spec.yaml"
    spec.write_text("new: ['csv:data/tasks.csv']\n")
    monkeypatch.chdir(specs / "work")
    assert partition(spec).new[0].labels == ["c", "d"]


def test_spec_missing_path_is_a_clear_error(specs):
    "A task file that is not there: one line naming the path and what to do, and no other file is tried"
    from adaptnb.spec import partition
    spec = specs / "specs" / "spec.yaml"
    spec.write_text(f"new: ['csv:{specs}/specs/../nope/tasks.csv']\n")
    with pytest.raises(AdaptnbError, match=r"file .*/specs/\.\./nope/tasks\.csv \(from 'csv:.*'\) does not exist: "
                                           "check the path"):
        partition(spec)


# --- commands write where they are told, and never unpickle ------------------------------------------------------

def _sandbox(tmp_path: Path) -> tuple[dict, list[Path]]:
    "Environment and folders for a command: empty working directory, HOME and TMPDIR that must stay empty"
    dirs = [tmp_path / n for n in ("cwd", "home", "tmp")]
    for d in dirs:
        d.mkdir()
    # Caches of the libraries, not adaptnb's writes, go where we say: importing transformers' BERT imports
    # torch._dynamo, which makes an (empty) $TMPDIR/torchinductor_$USER; matplotlib keeps a font cache; Python
    # writes bytecode beside the modules.
    caches = tmp_path / "caches"
    env = dict(ENV, HOME=str(dirs[1]), TMPDIR=str(dirs[2]), MPLCONFIGDIR=str(caches / "matplotlib"),
               TORCHINDUCTOR_CACHE_DIR=str(caches / "torchinductor"), PYTHONDONTWRITEBYTECODE="1")
    return env, dirs


def _files_in(box: Path) -> dict:
    "Every entry under the sandbox with its size and mtime but the caches; its folders count by what they hold"
    # (not by their own mtime: importing torch imports dill, which makes and removes a file in $TMPDIR)
    t = _tree(box)
    return {k: v for k, v in t.items() if not k.startswith("caches") and k not in ("cwd", "home", "tmp")}


def _in(tmp_path: Path, env: dict, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adaptnb.cli", *args], env=env, cwd=tmp_path / "cwd",
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    "A 4-step finetune run with one checkpoint, made in a sandbox; the sandbox, its folders and the run"
    box = tmp_path_factory.mktemp("box")
    env, dirs = _sandbox(box)
    r = _in(box, env, "finetune", *TRAIN, "--out", str(box / "elsewhere" / "run"))
    assert r.returncode == 0, r.stderr[-3000:]
    return box, env, dirs, box / "elsewhere" / "run"


def test_finetune_writes_only_under_out(run):
    "adaptnb finetune run from an empty folder leaves it, HOME and TMPDIR empty: everything is under --out"
    box, _, dirs, out = run
    assert {d.name: sorted(os.listdir(d)) for d in dirs} == {"cwd": [], "home": [], "tmp": []}
    assert set(os.listdir(box)) - {"caches"} == {"cwd", "elsewhere", "home", "tmp"}
    assert os.listdir(out.parent) == ["run"]
    assert {"model", "checkpoint", "metrics.json", "train_config.json"} <= set(os.listdir(out))


def test_deploy_and_predict_write_only_the_artifact(run):
    "adaptnb deploy writes the artifact and nothing beside it; adaptnb predict writes nothing at all"
    box, env, dirs, out = run
    art = box / "shipped" / "art"
    r = _in(box, env, "deploy", str(out), "--out", str(art))
    assert r.returncode == 0, r.stderr[-3000:]
    assert os.listdir(art.parent) == ["art"]  # the temporary sibling is gone
    before = _files_in(box)
    r = _in(box, env, "predict", str(art), "a cup final")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout)["label"] and _files_in(box) == before
    assert {d.name: sorted(os.listdir(d)) for d in dirs} == {"cwd": [], "home": [], "tmp": []}


class _RunsCode:
    "A pickled object that, once unpickled, has made the folder `path`"

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


@pytest.mark.parametrize("name", ["optimizer.pt", "scheduler.pt", "rng_0.pt"])
def test_crafted_checkpoint_file_is_never_unpickled(run, tmp_path, name):
    "Each .pt file of a checkpoint, replaced by a pickle that would run code, is refused as damaged; no code runs"
    from adaptnb.train import DamagedCheckpoint, latest_checkpoint, read_checkpoint
    ck = shutil.copytree(latest_checkpoint(run[3] / "checkpoint"), tmp_path / "step-00000004")
    torch.save({"state": _RunsCode(tmp_path / "ran")}, ck / name)
    with pytest.raises(DamagedCheckpoint, match=f"{name} holds Python objects .* adaptnb never unpickles"):
        read_checkpoint(ck)
    assert not (tmp_path / "ran").exists()


def test_resume_refuses_a_crafted_checkpoint(run, tmp_path, capsys):
    "adaptnb finetune --resume on a run whose only checkpoint holds a crafted pickle: one line, exit 2, nothing runs"
    # (`main` in this process: what is checked is the refusal, not where the command writes)
    out = run[3]
    mine = shutil.copytree(out, tmp_path / "run")
    ck = next((mine / "checkpoint").glob("step-*"))
    torch.save({"state": _RunsCode(tmp_path / "ran")}, ck / "optimizer.pt")
    rc, _, err = main_cli(capsys, "finetune", *TRAIN, "--out", mine, "--resume")
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err[-3000:]
    assert "no checkpoint" in lines[0] and "optimizer.pt holds Python objects" in lines[0]
    assert "never unpickles" in lines[0] and not (tmp_path / "ran").exists()


def test_package_never_unpickles():
    "No loader in the package can unpickle: every torch.load is weights_only=True, and no pickle-based reader is used"
    src = {str(p.relative_to(ROOT / "adaptnb")): p.read_text()
            for p in sorted((ROOT / "adaptnb").rglob("*.py")) if p.name != "_modidx.py"}
    banned = [r"weights_only\s*=\s*False", r"\bpickle\.loads?\(", r"\bpickle\.Unpickler\b", r"allow_pickle\s*=\s*True",
              r"\bread_pickle\(", r"\bjoblib\.load\(", r"\b(dill|cloudpickle|shelve|marshal)\b",
              r"trust_remote_code\s*=\s*True"]
    found = [(n, pat) for n, s in src.items() for pat in banned if re.search(pat, s)]
    assert found == []
    calls = [(n, m.start(), s) for n, s in src.items() for m in re.finditer(r"torch\.load\(", s)]
    loads = [(n, s[i: s.index(")", i)]) for n, i, s in calls]
    assert loads and all("weights_only=True" in call for _, call in loads), loads
