"""A catalogue of user mistakes, one row each: every command and the main Python entry points, by area.

Each command row runs `adaptnb.cli.main` in this process (an `adaptnb` process costs seconds of imports; a few rows
run one to check the real entry point) and asserts exit status 2 and exactly one line on standard error, of the form
`adaptnb COMMAND: error: PROBLEM: FIX`, that holds the row's words and a fix, with no traceback. Each Python row
asserts the documented exception, `AdaptnbError`, with the row's words in its message. Rows that fail in a module this
file's author does not own are marked `xfail(strict=True)` with the fix they need, so they turn into failures (and get
unmarked) the day the fix lands."""
import contextlib, io, json, os, shutil, subprocess, sys
from pathlib import Path
import pytest

from adaptnb.cli import main
from adaptnb.core import AdaptnbError, MultiTaskModel, check_seed, get_device, seed_everything
from adaptnb.data import load_task, load_tasks, make_task, task_from_lists
from adaptnb.train import TrainConfig, fit

ENV = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ADAPTNB_NO_PROGRESS="1")
FIX = ("use ", "give ", "pass ", "choose ", "check ", "add ", "start ", "drop ", "fill ", "rename ", "see ", "free ",
       "save ", "install ", "resume", "lower ", "try ", "fix ", "list ", "delete ", "write ", "remove ", "name ",
       "export ", "allowed keys are")
TRAIN = ["--max-steps", "2", "--batch-size", "8", "--max-length", "16"]  # a tiny run, for the rows that get that far


# ---- the files the rows read ----------------------------------------------------------------------------------------
GOOD = "text,label\n" + "".join(f"{c} example number {i} about {c} things,{c}\n" for c in "abc" for i in range(12))


def _write_files(d: Path):
    "Every data file, model folder and spec the rows name, under `d`"
    w = lambda name, s: (d / name).write_text(s, encoding="utf-8")
    w("good.csv", GOOD)
    w("good.txt", GOOD)
    (d / "latin1.csv").write_bytes(("text,label\n" + "".join(f"café crème {i},a\nthé {i},b\n" for i in range(9)))
                                   .encode("latin-1"))
    (d / "utf16.csv").write_bytes(GOOD.encode("utf-16"))
    (d / "binary.csv").write_bytes(bytes(range(256)) * 8)
    w("empty.csv", "")
    w("header_only.csv", "text,label\n")
    w("bad_quotes.csv", 'text,label\n"an open quote,a\nfine,b\n' + "x,y,z,w\n" * 3)
    w("sentence.csv", GOOD.replace("text,label", "sentence,label", 1))
    w("no_label.csv", GOOD.replace(",a\n", ",\n", 1))
    w("one_class.csv", "text,label\n" + "".join(f"only one class {i},a\n" for i in range(12)))
    w("blank_texts.csv", "text,label\n" + "".join(f"   ,{'ab'[i % 2]}\n" for i in range(12)))
    w("tiny_class.csv", GOOD + "rare one,d\nrare two,d\n")
    w("holdout.csv", "text,label,split\n" + "".join(f"t {i} {c},{c},{['train', 'holdout'][i % 2]}\n"
                                                     for c in "ab" for i in range(8)))
    w("no_test.csv", "text,label,split\n" + "".join(f"t {i} {c},{c},{['train', 'valid'][i % 2]}\n"
                                                     for c in "ab" for i in range(8)))
    w("unseen_test.csv", "text,label,split\n" + "".join(f"t {i} {c},{c},train\n" for c in "ab" for i in range(6))
      + "t 1 c,c,test\nt 2 a,a,test\n")
    w("good.jsonl", "".join(json.dumps({"text": f"{c} example {i}", "label": c}) + "\n"
                            for c in "ab" for i in range(9)))
    w("not_objects.jsonl", '["one", "a"]\n["two", "b"]\n')
    w("broken.jsonl", '{"text": "one", "label": "a"}\n{"text": "two", "label": \n')
    w("data.xlsx", "not a spreadsheet")
    (d / "folder.csv").mkdir()
    (d / "a_file").write_text("x")
    (d / "empty_dir").mkdir()
    (d / "bad_config").mkdir()
    (d / "bad_config" / "config.json").write_text("{ not json")
    (d / "bad_meta").mkdir()
    (d / "bad_meta" / "adaptnb.json").write_text("{")
    w("spec_broken.yaml", "retain: [news_topic\nnew: movie_sentiment: x\n")
    w("spec_list.yaml", "- news_topic\n- movie_sentiment\n")
    w("spec_empty.yaml", "")
    w("spec_unknown_key.yaml", "retain: [news_topic]\nnew: [movie_sentiment]\nbudgett: 3\n")
    w("spec_no_new.yaml", "retain: [news_topic]\n")
    w("spec_bad_candidate.yaml", "retain: [news_topic]\nnew: [movie_sentiment]\ncandidates: [wise_ft]\n")
    w("spec_missing_file.yaml", f"retain: [news_topic]\nnew: ['csv:{d}/nope.csv']\n")
    w("spec_good.yaml", "retain: [news_topic]\nnew: [movie_sentiment]\nmax_per_class: 10\n")
    w("spec_update_no_parent.yaml", "new: [movie_sentiment]\nupdate: {news_topic: news_topic}\n")
    w("spec_bad_memory.yaml", "new: [movie_sentiment]\nmemory: -1\n")
    w("spec_one_model.yaml", "new: [movie_sentiment]\nmodels: [default]\n")
    w("spec_smollm2.yaml", "model: smollm2\nnew: [movie_sentiment]\n")
    w("spec_two_models.yaml", "new: [movie_sentiment]\nmodels: [default, smollm2]\n")
    w("spec_model_and_models.yaml", "new: [movie_sentiment]\nmodel: default\nmodels: [default, smollm2]\n")
    w("spec_big_memory.yaml", f"new: ['csv:{d}/good.csv']\nmemory: 50\n")
    w("texts_latin1.txt", "")
    (d / "texts_latin1.txt").write_bytes("café\n".encode("latin-1"))


def _damaged_checkpoint(d: Path) -> Path:
    "A run folder whose only checkpoint is garbage"
    ck = d / "damaged_run" / "checkpoint" / "step-00000002"
    ck.mkdir(parents=True)
    for f in ("model.safetensors", "optimizer.pt", "scheduler.pt"):
        (ck / f).write_bytes(b"\0garbage")
    (ck / "state.json").write_text('{"step": 2, "fingerprint": {}}')
    (ck.parent / "latest.json").write_text('{"step": 2, "dir": "step-00000002"}')
    (d / "damaged_run" / "train_config.json").write_text("{}")
    return d / "damaged_run"


def _quiet_main(argv: list[str]) -> tuple[int, str, str]:
    "Run `adaptnb ARGV` in this process: (exit status, stdout, stderr)"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # --help and friends
            code = e.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    "The workspace: bad files, a finished run and an artifact of it (the rows that need them name them)"
    d = tmp_path_factory.mktemp("bad_input")
    _write_files(d)
    _damaged_checkpoint(d)
    code, _, err = _quiet_main(["finetune", "--task", f"csv:{d}/good.csv", *TRAIN, "--out", str(d / "run")])
    assert code == 0, err
    code, _, err = _quiet_main(["deploy", str(d / "run"), "--out", str(d / "artifact")])
    assert code == 0, err
    (d / "unfinished_run").mkdir()
    (d / "unfinished_run" / "train_config.json").write_text("{}")
    shutil.copytree(d / "run" / "model", d / "no_heads_model")
    (d / "no_heads_model" / "heads.safetensors").unlink()
    shutil.copytree(d / "artifact", d / "bad_manifest_artifact")
    for f in (d / "bad_manifest_artifact").glob("*.json"):
        f.write_text("{")
    return d


# ---- the catalogue: (area, argv, words the one line must hold[, marks]) ---------------------------------------------
def row(area, argv, *words, marks=()):
    return pytest.param(area, argv, words, marks=marks, id=f"{area}: {' '.join(argv)}"[:110])


NT = ["--task", "news_topic"]
CASES = [
    # the command line itself: unknown commands and options, missing values, values of the wrong type
    row("usage", ["frobnicate"], "unknown command 'frobnicate'", "use one of"),
    row("usage", ["finetune", *NT], "required", "--out"),
    row("usage", ["finetune", *NT, "--out", "{o}", "--max-steps"], "--max-steps", "expected one argument"),
    row("usage", ["finetune", *NT, "--out", "{o}", "--max-steps", "abc"], "invalid int value: 'abc'"),
    row("usage", ["retrain", *NT, "--out", "{o}", "--lr", "fast"], "--lr", "invalid float value: 'fast'"),
    row("usage", ["dashboard", "--port", "99999"], "'99999' is not a port", "--port 8866"),
    row("usage", ["score", "--tasks", "news_topic", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    row("usage", ["tasks", "--json"], "--json", "expected one argument"),
    row("usage", ["predict"], "required", "artifact"),
    row("usage", ["interpolate", "--tuned", "{d}/run"], "required", "--tasks"),
    row("usage", ["deploy", "{d}/run", "--out", "{d}/art2", "--quantize", "int4"], "invalid choice: 'int4'"),
    row("usage", ["audit", "news_topic", "--max-per-class", "many"], "invalid int value: 'many'"),
    row("usage", ["decide"], "required", "spec"),
    # numeric ranges, including the model's own limits
    row("ranges", ["finetune", *NT, "--out", "{o}", "--seed", "-1"], "'-1' is not a seed", "--seed 0"),
    row("ranges", ["tasks", "--seed", "4294967296"], "is not a seed", "[0, 2**32)"),
    row("ranges", ["finetune", *NT, "--out", "{o}", "--max-length", "1000"], "1000", "512 positions",
        "512 or less"),
    row("ranges", ["score", "--tasks", "news_topic", "--max-length", "4096"], "512 positions", "512 or less"),
    row("ranges", ["finetune", *NT, "--out", "{o}", "--max-length", "4"], "max_length must be an integer >= 8"),
    row("ranges", ["finetune", *NT, "--out", "{o}", "--lr", "0"], "lr must be a positive number"),
    row("ranges", ["finetune", *NT, "--out", "{o}", "--lr", "nan"], "lr must be a positive number"),
    row("ranges", ["finetune", *NT, "--out", "{o}", "--batch-size", "0"], "batch size must be a positive integer"),
    row("ranges", ["finetune", *NT, "--out", "{o}", "--max-steps", "0"], "max_steps must be a positive integer"),
    row("ranges", ["retrain", *NT, "--out", "{o}", "--epochs", "-1"], "epochs must be positive"),
    row("ranges", ["finetune", *NT, "--out", "{o}", "--warmup", "1.5"], "warmup is a fraction"),
    row("ranges", ["finetune", *NT, "--out", "{o}", "--method", "lora", "--lora-r", "0"], "lora_r must be"),
    row("ranges", ["finetune", *NT, "--out", "{o}", "--method", "freeze", "--freeze-layers", "99"],
        "freeze_layers=99", "6 layers"),
    row("ranges", ["retrain", *NT, "--out", "{o}", "--patience", "0"], "patience must be a positive integer"),
    row("ranges", ["finetune", *NT, "--out", "{o}", "--max-minutes", "0"], "max_minutes must be positive"),
    row("ranges", ["score", "--tasks", "news_topic", "--batch-size", "0"], "'0' is not a positive integer"),
    row("ranges", ["deploy", "{d}/run", "--out", "{d}/art2", "--prune", "1.5"], "prune"),
    row("ranges", ["interpolate", "--tuned", "{d}/run", "--tasks", "csv:{d}/good.csv", "--n", "0"],
        "--n 0 must be at least 1"),  # refused before any model is read
    # devices and precision
    row("devices", ["finetune", *NT, "--out", "{o}", "--device", "tpu"], "unknown device 'tpu'", "use 'cpu'"),
    row("devices", ["finetune", *NT, "--out", "{o}", "--device", "cuda:99"], "cuda:99", "use 'cpu'"),
    row("devices", ["score", "--tasks", "news_topic", "--device", "mps"], "MPS is not available", "use 'cpu'"),
    row("devices", ["finetune", *NT, "--out", "{o}", "--precision", "fp16"], "unknown precision 'fp16'"),
    row("devices", ["predict", "{d}/artifact", "some text", "--device", "quantum"], "unknown device 'quantum'"),
    # files and encodings
    row("files", ["score", "--tasks", "csv:{d}/nope.csv"], "nope.csv", "does not exist", "check the path"),
    row("files", ["finetune", "--task", "csv:{d}/folder.csv", "--out", "{o}"], "is a folder, not a data file"),
    row("files", ["finetune", "--task", "{d}/data.xlsx", "--out", "{o}"], "unknown file type '.xlsx'"),
    row("files", ["audit", "csv:{d}/empty.csv"], "empty.csv", "is empty"),
    row("files", ["audit", "csv:{d}/bad_quotes.csv"], "bad_quotes.csv", "could not be parsed"),
    row("files", ["audit", "jsonl:{d}/broken.jsonl"], "broken.jsonl", "line 2 is not valid JSON"),
    row("files", ["audit", "jsonl:{d}/not_objects.jsonl"], "line 1 is a JSON list, not an object"),
    row("files", ["predict", "{d}/artifact", "--file", "{d}/nope.txt"], "nope.txt", "does not exist"),
    row("encodings", ["audit", "csv:{d}/latin1.csv"], "latin1.csv", "not UTF-8", "save it as UTF-8"),
    row("encodings", ["audit", "csv:{d}/utf16.csv"], "utf16.csv", "not UTF-8", "save it as UTF-8"),
    row("encodings", ["audit", "csv:{d}/binary.csv"], "binary.csv", "not UTF-8"),
    row("encodings", ["predict", "{d}/artifact", "--file", "{d}/texts_latin1.txt"], "texts_latin1.txt", "UTF-8"),
    # columns
    row("columns", ["audit", "csv:{d}/sentence.csv"], "no column 'text'", "'sentence'", "--text-col"),
    row("columns", ["audit", "csv:{d}/good.csv", "--label-col", "topic"], "no column 'topic'", "--label-col"),
    row("columns", ["audit", "jsonl:{d}/good.jsonl", "--text-col", "body"], "no column 'body'", "--text-col"),
    # labels and class sizes
    row("labels", ["audit", "csv:{d}/no_label.csv"], "label in row", "is missing", "fill or drop"),
    row("labels", ["audit", "csv:{d}/one_class.csv"], "only one label", "'a'"),
    row("labels", ["audit", "csv:{d}/blank_texts.csv"], "no text is left after cleaning"),
    row("labels", ["audit", "csv:{d}/header_only.csv"], "the data set is empty"),
    row("class sizes", ["audit", "csv:{d}/tiny_class.csv"], "class 'd' has only 2 example(s)", "add data"),
    row("class sizes", ["audit", "news_topic", "--max-per-class", "2"], "max_per_class must be", "at least 3"),
    # splits
    row("splits", ["audit", "csv:{d}/holdout.csv"], "unknown split name(s)", "holdout"),
    row("splits", ["audit", "csv:{d}/no_test.csv"], "no 'test' rows"),
    row("splits", ["audit", "csv:{d}/unseen_test.csv"], "test label(s)", "never occur in train"),
    row("splits", ["score", "--tasks", "news_topic", "--split", "training"], "no split 'training'", "use one of"),
    # tasks
    row("tasks", ["score", "--tasks", "news_topics"], "unknown task 'news_topics'", "news_topic"),
    row("tasks", ["finetune", "--task", ",", "--out", "{o}"], "no task given"),
    row("tasks", ["finetune", "--task", "news_topic,news_topic", "--out", "{o}"], "given twice"),
    row("tasks", ["score", "--tasks", "hf:no_such_dataset_xyz"], "could not load dataset"),
    row("tasks", ["finetune", *NT, "--watch", "no_such_task", "--out", "{o}"], "unknown task 'no_such_task'"),
    row("tasks", ["finetune", "--task", "csv:{d}/good.csv", "--metric", "loss:news", "--out", "{o}"],
        "metric 'loss:news'", "neither trained nor watched"),
    # models
    row("models", ["finetune", *NT, "--model", "{d}/no/such/model", "--out", "{o}"], "does not exist",
        "use 'default'"),
    row("models", ["score", "--tasks", "news_topic", "--model", "{d}/a_file"], "is a file, not a model folder"),
    row("models", ["score", "--tasks", "news_topic", "--model", "{d}/empty_dir"], "is not a model folder"),
    row("models", ["score", "--tasks", "news_topic", "--model", "someone/no-such-model"], "could not load model",
        "someone/no-such-model"),
    row("models", ["score", "--tasks", "news_topic", "--model", "{d}/bad_config"], "could not load model"),
    row("models", ["score", "--tasks", "news_topic", "--model", "{d}/bad_meta"], "is not valid JSON"),
    row("models", ["score", "--tasks", "news_topic", "--model", "{d}/unfinished_run"], "holds no finished model"),
    row("models", ["score", "--tasks", "news_topic", "--model", "{d}/no_heads_model"], "heads.safetensors",
        "incomplete or damaged"),
    row("models", ["interpolate", "--tuned", "{d}/no/such/run", "--tasks", "news_topic"], "does not exist"),
    # output folders and files
    row("outputs", ["finetune", *NT, "--out", "{d}/a_file"], "exists and is a file", "choose another --out"),
    row("outputs", ["finetune", *NT, "--out", "{d}/a_file/run"], "cannot be created", "is a file"),
    row("outputs", ["retrain", *NT, "--out", "/proc/adaptnb-run"], "cannot be created", "choose another --out"),
    row("outputs", ["finetune", "--task", "csv:{d}/good.csv", "--out", "{d}/run"], "already holds a run",
        "--resume"),
    row("outputs", ["score", "--tasks", "news_topic", "--json", "{d}"], "is a folder: give a file name"),
    row("outputs", ["tasks", "--json", "{d}/a_file/tasks.json"], "exists and is a file", "choose another --json"),
    row("outputs", ["score", "--tasks", "news_topic", "--plot", "/proc/adaptnb/plot.png"], "cannot be created"),
    row("outputs", ["audit", "news_topic", "--out", "{d}/a_file/audit"], "cannot be created", "is a file"),
    row("outputs", ["deploy", "{d}/run", "--out", "{d}/a_file/art"], "cannot be created"),
    row("outputs", ["deploy", "{d}/run", "--out", "{d}/artifact"], "--overwrite"),
    row("outputs", ["run", "{d}/spec_good.yaml", "--out", "{d}/a_file/run"], "cannot be created"),
    row("outputs", ["demo", "--out", "{d}/a_file"], "is a file, not a folder", "choose another --out"),
    row("outputs", ["dashboard", "--root", "{d}/a_file"], "exists and is not a folder", "give a folder"),
    # requirement specs
    row("specs", ["decide", "{d}/no_spec.yaml"], "no_spec.yaml", "does not exist"),
    row("specs", ["decide", "{d}/spec_broken.yaml"], "spec_broken.yaml", "YAML"),
    row("specs", ["decide", "{d}/spec_list.yaml"], "mapping"),
    row("specs", ["decide", "{d}/spec_empty.yaml"], "spec_empty.yaml", "is empty"),
    row("specs", ["decide", "{d}/spec_unknown_key.yaml"], "budgett"),
    row("specs", ["decide", "{d}/spec_no_new.yaml"], "new"),
    row("specs", ["run", "{d}/spec_missing_file.yaml", "--out", "{d}/flow"], "nope.csv", "does not exist"),
    row("specs", ["run", "{d}/spec_bad_candidate.yaml", "--out", "{d}/flow"], "['wise_ft']", "cannot make", "wise-ft"),
    row("specs", ["interpolate", "--tuned", "nope", "--tasks", "news_topic"], "--tuned nope does not exist"),
    row("specs", ["interpolate", "--tuned", "{d}", "--tasks", "news_topic", "--alpha", "nan"], "--alpha nan"),
    # decision thresholds
    row("thresholds", ["decide", "{d}/spec_good.yaml", "--set", "frobnicate=1"], "frobnicate"),
    row("thresholds", ["decide", "{d}/spec_good.yaml", "--set", "max_unk_rate=lots"], "'lots' is not a number"),
    row("thresholds", ["decide", "{d}/spec_good.yaml", "--set", "max_unk_rate"], "NAME=VALUE"),
    row("thresholds", ["decide", "{d}/spec_good.yaml", "--set", "max_unk_rate=-1"], "max_unk_rate", "in [0, 1]"),
    row("thresholds", ["deploy", "{d}/run", "--out", "{d}/art2", "--max-loss-rise", "-0.5"], "max_loss_rise"),
    # resume states
    row("resume", ["finetune", *NT, "--out", "{d}/empty_dir", "--resume"], "nothing to resume", "no checkpoint"),
    row("resume", ["finetune", *NT, "--out", "{d}/never_made", "--resume"], "nothing to resume"),
    row("resume", ["finetune", "--task", "csv:{d}/good.csv", *TRAIN, "--out", "{d}/damaged_run", "--resume"],
        "step-00000002", "is damaged", "start the run again"),
    row("resume", ["finetune", "--task", "csv:{d}/good.csv", *TRAIN, "--method", "freeze", "--out", "{d}/run",
                   "--resume"], "is from method 'full', not 'freeze'", "same method (--method full)"),
    row("resume", ["finetune", "--task", "jsonl:{d}/good.jsonl", *TRAIN, "--out", "{d}/run", "--resume"],
        "different model", "same model and tasks"),
    row("resume", ["run", "{d}/spec_good.yaml", "--out", "{d}/empty_dir", "--resume"], "nothing to resume",
        "without resume=True (--resume)"),
    row("resume", ["demo", "--out", "{d}/empty_dir", "--resume", "--overwrite"], "contradict", "pass one"),
    # artifacts
    row("artifacts", ["predict", "{d}/no_such_artifact", "text"], "is not a folder"),
    row("artifacts", ["serve", "{d}/no_such_artifact"], "is not a folder"),
    row("artifacts", ["serve", "{d}/run", "--port", "99999"], "is not a port", "--port 8866"),
    row("artifacts", ["predict", "{d}/run", "text"], "not an adaptnb artifact"),
    row("artifacts", ["predict", "{d}/bad_manifest_artifact", "text"], "damaged"),
    row("artifacts", ["predict", "{d}/artifact", "text", "--task", "nope"], "nope"),
    row("artifacts", ["deploy", "{d}/no_such_run", "--out", "{d}/art2"], "is not a folder"),
    row("artifacts", ["deploy", "{d}/unfinished_run", "--out", "{d}/art2"], "no finished model"),
    row("artifacts", ["onnx", "{d}/no_such_artifact", "--out", "{o}"], "is not a folder"),
    row("artifacts", ["onnx", "{d}/run", "--out", "{o}"], "not an adaptnb artifact"),
    row("artifacts", ["onnx", "{d}/artifact", "--out", "{d}/good.csv"], "is a file, not a folder", "choose another"),
    row("artifacts", ["serve", "{d}/artifact", "--int8"], "drop --int8", "adaptnb onnx --int8"),
    # lineage: a folder of generations (the rows that need a real parent run are in tests/test_lineage.py)
    row("lineage", ["lineage", "{d}/no_such_root"], "is not a folder", "pass the folder that holds the runs"),
    row("lineage", ["lineage", "{d}/empty_dir"], "holds no finished flow run", "pass the folder"),
    row("lineage", ["decide", "{d}/spec_update_no_parent.yaml"], "update needs a parent", "name a finished flow run"),
    row("lineage", ["decide", "{d}/spec_bad_memory.yaml"], "memory must be an integer >= 0", "use e.g. memory: 200"),
    row("lineage", ["run", "{d}/spec_big_memory.yaml", "--out", "{o}"], "memory: 50 examples a class", "use memory: "),
    row("lineage", ["run", "{d}/spec_smollm2.yaml", "--base", "default", "--out", "{o}"],
        "of the encoder family, but the spec's model: smollm2 is of the causal family", "name a base"),
    # choosing the base: models: lists two or more pretrained bases, instead of model:
    row("spec", ["run", "{d}/spec_one_model.yaml", "--out", "{o}"], "two or more base models", "models: [default, smollm2]"),
    row("spec", ["decide", "{d}/spec_model_and_models.yaml"], "give model: (one base) or models:", "not both"),
    row("spec", ["decide", "{d}/spec_two_models.yaml"], "adaptnb decide assesses one base", "adaptnb run ranks them"),
]


def _argv(argv: list[str], d: Path, o: Path) -> list[str]:
    "The row's arguments, with {d} the workspace and {o} a fresh folder"
    return [a.replace("{d}", str(d)).replace("{o}", str(o)) for a in argv]


def _check_line(err: str, words, cmd: str) -> str:
    "Exactly one line on stderr, `adaptnb CMD: error: ...` (or `adaptnb: error:`), with `words` and a fix"
    assert "Traceback" not in err, err[-3000:]
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, err[-3000:]
    line = lines[0]
    assert line.startswith((f"adaptnb {cmd}: error: ", "adaptnb: error: ")), line
    missing = [w for w in words if w not in line]
    assert not missing, f"{missing} not in: {line}"
    assert any(f in line for f in FIX), f"no fix in: {line}"
    return line


@pytest.mark.parametrize("area,argv,words", CASES)
def test_command_mistake(ws, tmp_path, area, argv, words):
    argv = _argv(argv, ws, tmp_path / "out")
    code, _, err = _quiet_main(argv)
    _check_line(err, words, argv[0])
    assert code == 2


# A few rows through a real `adaptnb` process: the installed entry point behaves as `main` does. (The processes run
# side by side: each is its own, and most of what each costs is its imports.)
SUBPROCESS = [
    row("usage", ["frobnicate"], "unknown command"),
    row("ranges", ["finetune", *NT, "--out", "{o}", "--seed", "-1"], "is not a seed"),
    row("ranges", ["score", "--tasks", "news_topic", "--max-length", "1000"], "512 or less"),
    row("encodings", ["audit", "csv:{d}/latin1.csv"], "not UTF-8"),
]


@pytest.fixture(scope="module")
def processes(ws, tmp_path_factory):
    "Every SUBPROCESS row's `adaptnb` process, started all at once (each its own process): {row's argv: (argv, result)}"
    started = {}
    for p in SUBPROCESS:
        argv = _argv(p.values[1], ws, tmp_path_factory.mktemp("row") / "out")
        started[tuple(p.values[1])] = argv, subprocess.Popen([sys.executable, "-m", "adaptnb.cli", *argv], env=ENV,
                                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = {}
    for k, (argv, proc) in started.items():
        out, err = proc.communicate(timeout=300)
        done[k] = argv, subprocess.CompletedProcess(argv, proc.returncode, out, err)
    return done


@pytest.mark.parametrize("area,argv,words", SUBPROCESS)
def test_command_mistake_in_a_process(processes, area, argv, words):
    argv, r = processes[tuple(argv)]
    _check_line(r.stderr, words, argv[0])
    assert r.returncode == 2 and r.stdout == ""


# ---- the Python entry points: the documented exception, `AdaptnbError`, with the problem and the fix ----------------
def _base():
    return MultiTaskModel.from_pretrained("default")


PY = [
    ("load_task: unknown name", lambda d: load_task("news_topics"), "unknown task"),
    ("load_task: empty reference", lambda d: load_task("  "), "non-empty string"),
    ("load_tasks: not names", lambda d: load_tasks([1, 2]), "must be Task objects or task names"),
    ("load_task: negative seed", lambda d: load_task(f"csv:{d}/good.csv", seed=-3), "seed must be an integer"),
    ("load_task: max_per_class of the wrong type", lambda d: load_task(f"csv:{d}/good.csv", max_per_class="5"),
     "max_per_class must be an integer"),
    ("make_task: lengths differ", lambda d: make_task("t", ["a", "b"], ["x"]), "2 texts but 1 labels"),
    ("make_task: bad task name", lambda d: make_task("1st", ["a", "b"], ["x", "y"]), "is not usable"),
    ("make_task: labels outside label_names",
     lambda d: make_task("t", ["a b", "c d", "e f"] * 4, [0, 1, 5] * 4, label_names=["x", "y"]), "label"),
    ("task_from_lists: one class", lambda d: task_from_lists([f"t {i}" for i in range(9)], ["a"] * 9),
     "only one label"),
    ("TrainConfig: negative seed", lambda d: TrainConfig(seed=-1), "seed must be an integer"),
    ("TrainConfig: unknown method", lambda d: TrainConfig(method="distill"), "unknown method"),
    ("TrainConfig: unknown schedule", lambda d: TrainConfig(schedule="wavy"), "unknown schedule"),
    ("fit: unknown option", lambda d: fit(None, "news_topic", bogus=1), "unknown training option"),
    ("fit: not a model", lambda d: fit("default", "news_topic"), "no model family serves a str: train a"),
    ("fit: max_length above the model's positions",
     lambda d: fit(_base(), f"csv:{d}/good.csv", max_length=600, max_steps=1), "512 or less"),
    ("fit: resume with nothing to resume",
     lambda d: fit(_base(), f"csv:{d}/good.csv", max_steps=1, out=str(d / "empty_dir"), resume=True),
     "nothing to resume"),
    ("from_pretrained: missing folder", lambda d: MultiTaskModel.from_pretrained(str(d / "nope")), "does not exist"),
    ("get_device: unknown device", lambda d: get_device("gpu0"), "unknown device"),
    ("seed_everything: negative seed", lambda d: seed_everything(-1), "seed must be an integer"),
    ("check_seed: a float", lambda d: check_seed(1.5), "seed must be an integer"),
]


@pytest.mark.parametrize("what,call,words", PY, ids=[p[0] for p in PY])
def test_python_mistake(ws, what, call, words):
    with pytest.raises(AdaptnbError) as e:
        call(ws)
    msg = str(e.value)
    assert words in msg and "\n" not in msg, msg


def test_the_catalogue_is_complete():
    "At least 60 distinct mistakes, every command among them"
    from adaptnb.cli import COMMANDS

    argvs = [tuple(p.values[1]) for p in CASES]
    assert len(set(argvs)) == len(argvs) and len(CASES) + len(PY) >= 60
    assert set(COMMANDS) <= {a[0] for a in argvs}
