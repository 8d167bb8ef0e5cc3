"""The dashboard, headless (widgets driven from Python, no kernel) and in a real browser (Voila + Playwright + chromium).

The browser tests start `adaptnb dashboard` itself (the installed command, which serves the packaged workbench with
Voila on 127.0.0.1), drive every tab in one page (Train: Start, the live plot redrawn, Stop; Flow: a tiny flow to its
verdict; Try: a prediction; Export: an int8 artifact behind the gate; Compare: both runs side by side; Lineage: the
flow run as a generation, its matrix, and the generation deployed again), save a
screenshot of each (printed; copied to bench/results/dashboard-<tab>.png), and end the command with Ctrl-C (SIGINT),
which must exit 0. They are skipped, saying why, where Debian's chromium is absent.
"""
import json, os, shutil, signal, socket, subprocess, sys, threading, time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
TINY = dict(tasks=["news_topic"], max_per_class=8, batch_size=8, max_length=32, eval_every=3)


def _dash(tmp_path, **kw):
    from adaptnb.widgets import TrainPanel
    return TrainPanel(out=tmp_path / "runs", **{**TINY, **kw})


def _run_threads(): return [t for t in threading.enumerate() if t.name == "adaptnb-run" and t.is_alive()]


def test_run_updates_plot_table_and_history(tmp_path):
    from adaptnb.widgets import load_history, default_device
    d = _dash(tmp_path, steps=6)
    assert not d.explore_lambda() and "no run yet" in d.lambda_box.children[1].value
    d.lr.value, d.seed.value, d.init_heads.value = 1e-4, 1, "probe"
    v0 = d.plot.widget.value
    d.start_button.click()
    d.start_button.click(); assert not d.start()          # Start twice: nothing more starts
    assert len(_run_threads()) == 1 and "already" in d.notice.value
    assert d.wait(900), "the run did not end"
    r = d.record
    assert r.status == "done", (r.status, r.error)
    assert r.steps == 6 and r.config["lr"] == 1e-4 and r.config["seed"] == 1 and r.device == default_device()
    assert d.plot.widget.value != v0 and len(d.plot.steps) == 6 and [e["step"] for e in d.plot.evals] == [0, 3, 6]
    assert "news_topic" in d.table.value and "S(M)" in d.table.value and r.score["tasks"]["news_topic"]["n"] > 0
    assert d.progress.value == d.progress.max == 6 and d.status_text.startswith("done at step 6")
    out = Path(r.out)
    assert (out / "dashboard.json").exists() and (out / "metrics.json").exists() and (out / "model").is_dir()
    assert [x.id for x in load_history(tmp_path / "runs")] == [r.id] and r.id in d.history_html.value
    assert not d.start_button.disabled and d.stop_button.disabled
    # the λ tab: θ0 = base with probes (the run's starting heads), θt = the run's best weights
    assert d.explore_lambda() and d.wait(600)
    lx = d.explorer
    assert lx is not None, d.lambda_box.children[1].value
    assert lx.grid.lambdas[0] == 0 and lx.grid.lambdas[-1] == 1 and len(lx.grid.values) == 11
    lx.slider.value = 0.5
    assert "0.500" in lx.table.value and lx.widget in d.lambda_box.children and d.tabs.selected_index == 4


def test_explore_lambda_on_a_causal_run(tmp_path):
    "The λ tab on a causal LM's run blends through the family (it used to load the model name as a hub id and fail)"
    from adaptnb.llm import CausalLM
    CausalLM.from_config("smollm2", seed=0).save(tmp_path / "tiny")  # a tiny random Llama with SmolLM2's tokenizer
    d = _dash(tmp_path, model=str(tmp_path / "tiny"), steps=4, eval_every=2, lr=1e-3, max_per_class=6)
    assert d.start() and d.wait(600)
    assert d.record.status == "done", (d.record.status, d.record.error)
    assert d.explore_lambda() and d.wait(600)
    lx = d.explorer
    assert lx is not None, d.lambda_box.children[1].value
    assert len(lx.grid.values) == 11 and set(lx.grid.losses[0]) == {"news_topic"}
    lx.slider.value = 0.5
    assert "0.500" in lx.table.value and "λ = 1 the run's best weights" in d.lambda_box.children[1].value


def test_stop_midway_keeps_best_weights(tmp_path):
    d = _dash(tmp_path, steps=500, eval_every=2)
    assert d.start()
    t0 = time.monotonic()
    while len(d.plot.steps) < 3:
        assert d.runner.running and time.monotonic() - t0 < 900, d.status_text
        time.sleep(0.01)
    at = d.plot.steps[-1]; d.stop_button.click()
    assert d.wait(600)
    r = d.record
    assert r.status == "stopped" and "stop" in (r.stopped or ""), (r.status, r.error)
    assert at <= r.steps <= at + 1                          # within one step of the click
    assert r.score is not None and (Path(r.out) / "model").is_dir() and r.best_valid_S is not None
    assert d.status_text.startswith(f"stopped at step {r.steps}")


def test_errors_show_in_the_train_tab(tmp_path):
    d = _dash(tmp_path, steps=2)
    d.tasks.value = ()
    assert not d.start() and d.status_text.startswith("not started: no task chosen")
    d.tasks.value = ("news_topic",); d.batch_size.value = 0
    assert not d.start() and "batch size" in d.status_text
    d.batch_size.value = 8; d.extra_tasks.value = "csv:/no/such/file.csv"
    assert d.start() and d.wait(300)
    assert d.record.status == "error" and "file.csv" in d.record.error and d.status_text.startswith("error:")
    assert "Traceback" in d.log.outputs[0]["text"] and d.tabs.selected_index == 3


@pytest.mark.cuda
def test_train_tab_defaults_to_cuda(tmp_path):
    import torch
    from adaptnb.widgets import TrainPanel
    d = TrainPanel(out=tmp_path / "runs")
    assert d.device.value.startswith("cuda") and torch.cuda.get_device_name(0) in d.gpu.value
    d = _dash(tmp_path, steps=3)
    assert d.start() and d.wait(600)
    assert d.record.status == "done" and d.record.device.startswith("cuda"), d.record.error


def _free_port() -> int:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


SPEC = {"name": "tiny", "retain": ["news_topic"], "new": ["movie_sentiment"], "budget": {"max_steps": 16},
        "max_per_class": 30, "max_length": 32, "batch_size": 8, "method": "freeze"}
T = int(os.environ.get("ADAPTNB_BROWSER_TIMEOUT_MS", 600_000))   # ms; generous because the machine may be shared, the steps below usually take seconds
browser_only = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"Debian chromium is not installed at {CHROMIUM} (apt-get install -y chromium): real-browser tests skipped")


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    "`adaptnb dashboard` serving a fresh runs folder, and one chromium page on it; Ctrl-C at the end must exit 0"
    pw = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")
    pytest.importorskip("voila", reason="voila is not installed")
    tmp = tmp_path_factory.mktemp("board")
    port, root = _free_port(), tmp / "runs"
    preset = {"flow": {"spec": SPEC, "sample": 60, "lambda_steps": 2}, "train": dict(TINY, steps=400, eval_every=2)}
    env = dict(os.environ, ADAPTNB_DASHBOARD=json.dumps(preset), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONUNBUFFERED="1")
    exe = Path(sys.executable).with_name("adaptnb")
    log = open(tmp / "voila.log", "w")
    proc = subprocess.Popen([str(exe), "dashboard", "--root", str(root), "--port", str(port)], env=env, cwd=tmp,
                            stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"adaptnb dashboard: http://127.0.0.1:{port}/"), (line, (tmp / "voila.log").read_text()[-2000:])
        with pw.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.goto(f"http://127.0.0.1:{port}/", timeout=T)
            page.get_by_role("tab", name="Flow").wait_for(timeout=T)
            yield page, root
            browser.close()
        proc.send_signal(signal.SIGINT)                       # what Ctrl-C does
        assert proc.wait(60) == 0 and "stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None: proc.kill()
        log.close()


def _shot(page, tab: str, tmp_path) -> Path:
    "A full-page screenshot, kept in tmp_path and bench/results/dashboard-<tab>.png"
    shot = tmp_path / f"dashboard-{tab}.png"; page.screenshot(path=str(shot), full_page=True)
    keep = ROOT / "bench" / "results" / shot.name; keep.parent.mkdir(parents=True, exist_ok=True); shutil.copy(shot, keep)
    print(f"\nscreenshot: {shot} (copied to {keep})")
    return shot


def _text(page, css: str) -> str:
    return page.locator(css).first.inner_text()


def _wait_text(page, css: str, pattern: str):
    "Wait until the visible element `css` matches the regular expression `pattern`"
    page.wait_for_function("([c, p]) => [...document.querySelectorAll(c)].some(e => e.offsetParent && new RegExp(p).test(e.innerText))",
                           arg=[css, pattern], timeout=T)


@browser_only
def test_dashboard_in_a_real_browser(board, tmp_path):
    "Train tab: Start, the live plot redrawn during the run, Stop; the run is recorded as stopped"
    page, root = board
    page.get_by_role("tab", name="Train").click()
    start = page.get_by_role("button", name="Start"); start.wait_for(timeout=T)
    plot, status = page.locator("img.adaptnb-plot"), page.locator(".adaptnb-status")
    assert "ready" in status.inner_text()
    start.click()
    page.wait_for_function("() => document.querySelector('.adaptnb-status').innerText.includes('running: step')", timeout=T)
    src = plot.get_attribute("src")
    page.wait_for_function("s => document.querySelector('img.adaptnb-plot').src !== s", arg=src, timeout=T)   # redrawn live
    page.get_by_role("button", name="Stop").click()
    page.wait_for_function("() => /status: ((stopped|done) at step \\d+ after|error)/.test(document.querySelector('.adaptnb-status').innerText)", timeout=T)
    text = status.inner_text()
    _shot(page, "train", tmp_path)
    print(f"status line: {text}")
    assert text.startswith("status: stopped at step"), text
    recs = list(root.glob("*/dashboard.json"))
    assert len(recs) == 1 and json.loads(recs[0].read_text())["status"] == "stopped"


@browser_only
def test_flow_tab_runs_a_requirement_to_its_verdict(board, tmp_path):
    "Flow tab: Assess shows the decision alone; Run flow ticks off every stage to the candidates and the verdict"
    page, root = board
    page.get_by_role("tab", name="Flow").click()
    assert "movie_sentiment" in page.locator(".adaptnb-spec textarea").input_value()
    page.get_by_role("button", name="Assess").click()
    _wait_text(page, ".adaptnb-flow-status", "status: (assessed|error)")
    assert "assessed" in _text(page, ".adaptnb-flow-status") and "finetune" in _text(page, ".adaptnb-decision")
    t0 = time.monotonic()
    page.get_by_role("button", name="Run flow").click()
    _wait_text(page, ".adaptnb-flow-status", "stage \\d+/\\d+: ")
    _wait_text(page, ".adaptnb-flow-status", "status: (done in|error)")
    seconds = time.monotonic() - t0
    status = _text(page, ".adaptnb-flow-status")
    _shot(page, "flow", tmp_path)
    print(f"Start to verdict: {seconds:.1f} s; {status}")
    assert "done in" in status, status
    verdict = _text(page, ".adaptnb-verdict")
    assert "Verdict" in verdict and "S(M)" in verdict and "candidate" in verdict
    assert "finetune" in _text(page, ".adaptnb-decision") and "score on test" in page.content()
    assert "Estimated on this machine" in page.content() and "from now" in page.content()  # the plan, said up front
    assert len(list(root.glob("*/run.json"))) == 1


@browser_only
def test_try_tab_predicts_with_base_shipped_and_lambda(board, tmp_path):
    "Try tab: two texts typed, Predict; one row each, a column per model with a label and its probability"
    page, _ = board
    page.get_by_role("tab", name="Try").click()
    page.locator(".adaptnb-try-texts textarea").fill("A moving, beautifully acted film.\nDull and far too long.")
    page.get_by_role("button", name="Predict").click()
    _wait_text(page, ".adaptnb-try-table", "base")
    table = _text(page, ".adaptnb-try-table")
    _shot(page, "try", tmp_path)
    print(table)
    assert "Dull and far too long." in table and "shipped" in table and ("fresh" in table or "rotten" in table)


@browser_only
def test_export_tab_writes_an_int8_artifact_behind_the_gate(board, tmp_path):
    "Export tab: int8, Export (forced if the gate refuses); the gate's verdict and the rendered model card"
    page, root = board
    page.get_by_role("tab", name="Export").click()
    page.locator(".adaptnb-quantize select").select_option(label="int8")
    page.get_by_role("button", name="Export").click()
    _wait_text(page, ".adaptnb-export-status", "status: (exported|not exported|error)")
    if "tick force" in _text(page, ".adaptnb-export-status"):   # refused: the gate's reason is shown; force it
        assert "gate" in page.content()
        page.locator(".adaptnb-force input").check()
        page.get_by_role("button", name="Export").click()
        _wait_text(page, ".adaptnb-export-status", "status: (exported|error)")
    page.get_by_text("Metrics").first.wait_for(timeout=T)   # the card, rendered from Markdown
    status = _text(page, ".adaptnb-export-status")
    _shot(page, "export", tmp_path)
    print(status)
    assert "exported to" in status and "int8" in status, status
    assert len(list((root / "artifacts").glob("*/artifact.json"))) == 1


@browser_only
def test_compare_tab_puts_the_runs_side_by_side(board, tmp_path):
    "Compare tab: the flow run and the Train tab's run in one table, and the figure drawn"
    page, _ = board
    page.get_by_role("tab", name="Compare").click()
    _wait_text(page, ".adaptnb-compare-table", "fit \\(full\\)")
    table = _text(page, ".adaptnb-compare-table")
    _shot(page, "compare", tmp_path)
    assert "flow" in table and "fit (full)" in table and "S after" in table
    assert page.evaluate("() => document.querySelector('img.adaptnb-compare-plot').naturalWidth") > 500   # drawn


@browser_only
def test_lineage_tab_shows_the_generations_and_deploys_one(board, tmp_path):
    "Lineage tab: the flow run as generation 1 in the tree, the task x generation matrix, Deploy this generation"
    page, root = board
    t0 = time.monotonic()
    page.get_by_role("tab", name="Lineage").click()
    _wait_text(page, ".adaptnb-lineage-tree", "acc movie_sentiment")
    tree = _text(page, ".adaptnb-lineage-tree")
    assert "BWT" in tree and "acc news_topic" in tree and "change" in tree, tree
    page.wait_for_function("() => document.querySelector('img.adaptnb-lineage-plot').naturalWidth > 200", timeout=T)
    assert page.evaluate("() => document.querySelector('img.adaptnb-lineage-plot').clientWidth") > 200   # shown
    page.get_by_role("button", name="Deploy this generation").click()
    _wait_text(page, ".adaptnb-lineage-status", "status: (deployed|not deployed)")
    if "not deployed" in _text(page, ".adaptnb-lineage-status"):   # refused as deploy refuses (the base stays): force
        assert "force" in _text(page, ".adaptnb-lineage-status")
        page.locator(".adaptnb-lineage-force input").check()
        page.get_by_role("button", name="Deploy this generation").click()
        _wait_text(page, ".adaptnb-lineage-status", "status: deployed")
    status = _text(page, ".adaptnb-lineage-status")
    page.evaluate("() => document.querySelector('img.adaptnb-lineage-plot').decode()")  # painted whole before the shot
    _shot(page, "lineage", tmp_path)
    print(f"{status} ({time.monotonic() - t0:.1f} s)")
    (run,) = [p.parent.name for p in root.glob("*/run.json")]
    assert f"deployed {run} to" in status and (root / "artifacts" / run / "artifact.json").exists()


@browser_only
@pytest.mark.cuda
def test_gpu_line_in_a_real_browser(board, tmp_path):
    "On a CUDA machine the board says which GPU it runs on"
    import torch
    page, _ = board
    line = _text(page, ".adaptnb-device")
    _shot(page, "gpu", tmp_path)
    assert torch.cuda.get_device_name(0) in line, line
