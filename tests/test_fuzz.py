"""Fuzzing the loaders with hypothesis: random CSV, JSONL and YAML contents (bytes, encodings, quoting, huge fields,
blank lines, BOMs) end in a valid task (or requirement) or in one `AdaptnbError` line, never in anything else.

Few examples each (`FUZZ`), so the file runs in seconds; raise `ADAPTNB_FUZZ_EXAMPLES` for a longer hunt."""
import csv, io, json, os, tempfile
from pathlib import Path
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st

from adaptnb.core import AdaptnbError
from adaptnb.data import Task, load_task

FUZZ = settings(max_examples=int(os.environ.get("ADAPTNB_FUZZ_EXAMPLES", "40")), deadline=None, database=None,
                derandomize=os.environ.get("ADAPTNB_FUZZ_RANDOM") != "1", suppress_health_check=list(HealthCheck))
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]


def _load(content: bytes, suffix: str, **kw):
    "load_task on a file holding `content`: a Task, or the AdaptnbError it raised"
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"data{suffix}"
        p.write_bytes(content)
        try:
            return load_task(f"{suffix[1:]}:{p}", **kw)
        except AdaptnbError as e:
            return e


def _valid(r):
    "A task that can train and be evaluated, or a one-line error"
    if isinstance(r, AdaptnbError):
        assert str(r) and "\n" not in str(r), repr(r)
        return
    assert isinstance(r, Task) and len(r.labels) >= 2 and len(r.train) > 0 and len(r.test) > 0
    assert all(isinstance(t, str) and t.strip() for t in r.train["text"])


texts = st.one_of(st.text(max_size=40), st.sampled_from(['"', '""', ",", "\n", "\r\n", "\ufeff", " ", "\t", "\\"]),
                  st.just("x" * 100_000))  # a huge field
rows = st.lists(st.tuples(texts, st.sampled_from(["a", "b", "c", "", "1", "é"])), max_size=40)


def _csv_bytes(header, rows, quote, blank_lines, encoding) -> bytes:
    "A CSV file: quoted by the csv module, or joined raw (which breaks quoting on purpose)"
    if quote:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(header)
        w.writerows(rows)
        s = buf.getvalue()
    else:
        s = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    if blank_lines:
        s = s.replace("\n", "\n\n")
    return s.encode(encoding, errors="replace")


@FUZZ
@given(header=st.sampled_from([("text", "label"), ("label", "text"), ("text",), ("sentence", "label"), ()]),
       rows=rows, quote=st.booleans(), blank_lines=st.booleans(), encoding=st.sampled_from(ENCODINGS))
def test_csv(header, rows, quote, blank_lines, encoding):
    rows = [r[: len(header)] if header else r for r in rows]
    _valid(_load(_csv_bytes(header, rows, quote, blank_lines, encoding), ".csv"))


@FUZZ
@given(content=st.binary(max_size=400))
def test_csv_bytes(content):
    _valid(_load(content, ".csv"))


@FUZZ
@given(content=st.binary(max_size=400))
def test_jsonl_bytes(content):
    _valid(_load(content, ".jsonl"))


values = st.one_of(texts, st.integers(), st.floats(allow_nan=True), st.none(), st.booleans(),
                   st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
records = st.lists(st.one_of(st.fixed_dictionaries({"text": values, "label": st.sampled_from(["a", "b", 0, 1, None])}),
                             st.dictionaries(st.sampled_from(["text", "label", "split", "x"]), values, max_size=4),
                             values), max_size=30)


@FUZZ
@given(records=records, blank_lines=st.booleans(), bom=st.booleans(), broken=st.booleans())
def test_jsonl(records, blank_lines, bom, broken):
    lines = [json.dumps(r) for r in records]
    if broken and lines:
        lines[len(lines) // 2] = lines[len(lines) // 2][:-1]
    s = ("\n\n" if blank_lines else "\n").join(lines) + "\n"
    _valid(_load(("\ufeff" if bom else "").encode() + s.encode(), ".jsonl"))


def test_a_good_file_loads_in_every_utf8_form():
    "The fuzzers' valid branch is reachable: a plain file, with a BOM, with blank lines, csv: on a .txt"
    rows = [(f"text number {i} about {c}", c) for c in "ab" for i in range(6)]
    for content in (_csv_bytes(("text", "label"), rows, True, False, "utf-8"),
                    _csv_bytes(("text", "label"), rows, True, False, "utf-8-sig"),
                    _csv_bytes(("text", "label"), rows, False, True, "utf-8")):
        t = _load(content, ".csv")
        assert isinstance(t, Task) and t.labels == ["a", "b"], t
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "notes.txt").write_bytes(_csv_bytes(("text", "label"), rows, True, False, "utf-8"))
        assert load_task(f"csv:{d}/notes.txt").labels == ["a", "b"]  # csv: names the format, whatever the suffix


yaml_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
                                     st.sampled_from(["news_topic", "movie_sentiment", "csv:/nowhere.csv"])),
                           lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=8), c,
                                                                                         max_size=3)), max_leaves=8)
specs = st.dictionaries(st.sampled_from(["retain", "new", "budget", "targets", "seed", "max_length", "candidates",
                                         "model", "name", "lr", "zzz"]), yaml_values, max_size=6)


@FUZZ
@given(spec=st.one_of(specs, yaml_values), text=st.text(max_size=80), use_text=st.booleans())
def test_yaml_spec(spec, text, use_text):
    "A requirement spec of random YAML: a Requirement or one error line (the tasks are not loaded here)"
    import yaml
    from adaptnb.spec import Requirement, load_requirement

    src = text if use_text else yaml.safe_dump(spec, allow_unicode=True)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "spec.yaml"
        p.write_text(src, encoding="utf-8")
        try:
            r = load_requirement(p)
        except AdaptnbError as e:
            assert str(e) and "\n" not in str(e), repr(e)
            return
    assert isinstance(r, Requirement) and r.new


@pytest.mark.parametrize("spec", ["new: 1\n", "retain: true\nnew: [news_topic]\n", "new: 2.5\n"])
def test_yaml_spec_scalar_task_list(spec, tmp_path):
    "What the fuzzer found: a number where a task list belongs"
    from adaptnb.spec import load_requirement

    (tmp_path / "spec.yaml").write_text(spec)
    with pytest.raises(AdaptnbError):
        load_requirement(tmp_path / "spec.yaml")


def test_yaml_spec_nested_candidates(tmp_path):
    "What the fuzzer found: a list inside the candidates list"
    from adaptnb.spec import load_requirement

    (tmp_path / "spec.yaml").write_text("new: [news_topic]\ncandidates: [[full]]\n")
    with pytest.raises(AdaptnbError):
        load_requirement(tmp_path / "spec.yaml")
