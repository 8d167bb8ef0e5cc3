"""The dashboard, headless (widgets driven from Python, no kernel) and in a real browser (Voila + Playwright + chromium).

The browser test serves apps/dashboard.ipynb with Voila on 127.0.0.1, clicks Start, waits until the live plot has
changed during the run, clicks Stop, reads the status line and saves a screenshot (printed path; also copied to
bench/results/dashboard.png). It is skipped, saying why, where Debian's chromium is absent.
"""
import json, os, shutil, socket, subprocess, sys, threading, time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
TINY = dict(tasks=["news_topic"], max_per_class=8, batch_size=8, max_length=32, eval_every=3)


def _dash(tmp_path, **kw):
    from adaptnb.widgets import Dashboard
    return Dashboard(out=tmp_path / "runs", **{**TINY, **kw})


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


def test_errors_show_in_the_dashboard(tmp_path):
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
def test_dashboard_defaults_to_cuda(tmp_path):
    import torch
    from adaptnb.widgets import Dashboard
    d = Dashboard(out=tmp_path / "runs")
    assert d.device.value.startswith("cuda") and torch.cuda.get_device_name(0) in d.gpu.value
    d = _dash(tmp_path, steps=3)
    assert d.start() and d.wait(600)
    assert d.record.status == "done" and d.record.device.startswith("cuda"), d.record.error


def _free_port() -> int:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def _wait_port(port, proc, timeout=120):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, "voila exited early"
        try: socket.create_connection(("127.0.0.1", port), 1).close(); return
        except OSError: time.sleep(0.2)
    raise TimeoutError(f"voila did not listen on port {port} within {timeout} s")


@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason=f"Debian chromium is not installed at {CHROMIUM} (apt-get install -y chromium): real-browser test skipped")
def test_dashboard_in_a_real_browser(tmp_path):
    pw = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")
    pytest.importorskip("voila", reason="voila is not installed")
    port = _free_port()
    preset = dict(TINY, out=str(tmp_path / "runs"), steps=400, eval_every=2)
    env = dict(os.environ, ADAPTNB_DASHBOARD=json.dumps(preset), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    log = open(tmp_path / "voila.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "voila", str(ROOT / "apps" / "dashboard.ipynb"), "--no-browser",
                             "--Voila.ip=127.0.0.1", f"--port={port}"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    T = 600_000   # ms; generous because the machine may be shared, the steps below usually take seconds
    try:
        _wait_port(port, proc)
        with pw.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/", timeout=T)
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
            shot = tmp_path / "dashboard.png"; page.screenshot(path=str(shot), full_page=True)
            browser.close()
        keep = ROOT / "bench" / "results" / "dashboard.png"; keep.parent.mkdir(parents=True, exist_ok=True); shutil.copy(shot, keep)
        print(f"\nstatus line: {text}\nscreenshot: {shot} (copied to {keep})")
        assert text.startswith("status: stopped at step"), text
        recs = list((tmp_path / "runs").glob("*/dashboard.json"))
        assert len(recs) == 1 and json.loads(recs[0].read_text())["status"] == "stopped"
    finally:
        proc.terminate()
        try: proc.wait(30)
        except subprocess.TimeoutExpired: proc.kill()
        log.close()
