"""adaptnb serve as a real process: uvicorn on a loopback port, httpx and the openai client, predict's numbers, every
bad request, concurrent requests across a hot swap, a full queue, SIGHUP, SIGTERM while requests are in flight, and the
command's mistakes (exit 2, one line)."""
import hashlib, json, os, shutil, signal, socket, subprocess, sys, threading, time
from contextlib import contextmanager
from pathlib import Path
import httpx
import pytest

from adaptnb.core import MultiTaskModel
from adaptnb.data import load_task
from adaptnb.deploy import MANIFEST, export, load
from adaptnb.heads import init_heads
from adaptnb.llm import CausalLM, load_causal_tokenizer
from conftest import main_cli

ENV = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
ADAPTNB = str(Path(sys.executable).with_name("adaptnb"))
KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
TEXTS = ["Shares in the bank fell after it reported a loss", "The striker scored twice in the cup final",
         "The minister announced a new tax on fuel", "A faster chip for phones"]
LONG = " ".join(["The central bank raised interest rates again"] * 40)  # far over max_length 32


@pytest.fixture(scope="module")
def arts(tmp_path_factory):
    "Two encoder artifacts of one task (probes fit on different samples), a tampered copy, a tiny causal LM"
    d = tmp_path_factory.mktemp("arts")
    m = MultiTaskModel.from_pretrained("default").eval()
    init_heads(m, [load_task("news_topic", max_per_class=8)], max_length=32)
    export(m, d / "news", max_length=32)
    init_heads(m, [load_task("news_topic", max_per_class=8, seed=1)], replace=True, max_length=32, seed=1)
    export(m, d / "news-v2", max_length=32)
    shutil.copytree(d / "news", d / "news-bad")
    heads = d / "news-bad" / "heads.safetensors"
    b = bytearray(heads.read_bytes())
    b[-8] ^= 0xFF  # one weight changed: the manifest's SHA-256 no longer matches
    heads.write_bytes(bytes(b))
    export(CausalLM.from_config(load_causal_tokenizer("smollm2"), seed=0), d / "llm", max_length=64)
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(art, *args, key=KEY):
    "`adaptnb serve ART` in a process of its own, ready; its Popen and URL. Ended with SIGTERM (then SIGKILL) after"
    port = free_port()
    cmd = [ADAPTNB, "serve", str(art), "--port", str(port), *args] + (["--api-key", key] if key else [])
    p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # 60 s at most
            assert p.poll() is None, p.communicate()[1][-3000:]
            try:
                if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("adaptnb serve did not get ready in 60 s")
        yield p, url
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture(scope="module")
def news(arts):
    "The encoder artifact served with a key and small limits"
    with serving(arts / "news", "--max-inputs", "8", "--max-body", "4000", "--max-wait-ms", "20") as (p, url):
        yield p, url


def one_line_error(r: httpx.Response, status: int, contains: str):
    "The answer is `status` with one line of JSON naming the problem"
    assert r.status_code == status, (r.status_code, r.text)
    e = r.json()["error"]
    assert contains in e and "\n" not in e and "Traceback" not in r.text, e


def test_predict_is_adaptnb_predict(arts, news, capsys):
    "POST /predict gives the labels and probabilities of `adaptnb predict`; a long text is cut as predict cuts it"
    _, url = news
    texts = TEXTS + [LONG]
    r = httpx.post(f"{url}/predict", json={"inputs": texts, "task": "news_topic"}, headers=AUTH)
    assert r.status_code == 200, r.text
    rc, out, err = main_cli(capsys, "predict", arts / "news", *texts)
    assert rc == 0, err
    want = [json.loads(l) for l in out.splitlines()]
    got = r.json()["predictions"]
    assert [g["label"] for g in got] == [w["label"] for w in want] and [g["text"] for g in got] == texts
    assert max(abs(g["probs"][k] - w["probs"][k]) for g, w in zip(got, want) for k in w["probs"]) < 1e-6
    assert r.json()["sha256"] == hashlib.sha256((arts / "news" / MANIFEST).read_bytes()).hexdigest()
    one = httpx.post(f"{url}/predict", json={"inputs": TEXTS[0]}, headers=AUTH).json()["predictions"]  # one string
    assert one[0]["label"] == want[0]["label"]


def test_an_onnx_export_serves_predicts_answers_and_swaps_in(arts, capsys):
    """`adaptnb onnx` then `adaptnb serve` of the export: onnxruntime answers /predict as the artifact does (to float
    rounding); a PyTorch service reloads into the export and back under its key; a changed graph is refused"""
    rc, out, err = main_cli(capsys, "onnx", arts / "news", "--out", arts / "news-onnx")
    assert rc == 0 and "adaptnb serve" in out, err
    bad = Path(shutil.copytree(arts / "news-onnx", arts / "news-onnx-bad"))
    with open(bad / "model.onnx", "ab") as f:
        f.write(b"\0")  # one byte more than the graph onnx.json records
    with serving(arts / "news-onnx", key=None) as (_, onnx_url), serving(arts / "news") as (_, url):
        got = httpx.post(f"{onnx_url}/predict", json={"inputs": TEXTS, "task": "news_topic"}).json()
        m = httpx.get(f"{onnx_url}/v1/models").json()["data"][0]
        want = httpx.post(f"{url}/predict", json={"inputs": TEXTS, "task": "news_topic"}, headers=AUTH).json()
        r = httpx.post(f"{url}/admin/reload", json={"artifact": str(arts / "news-onnx")}, headers=AUTH)
        assert r.status_code == 200, r.text
        assert httpx.get(f"{url}/v1/models", headers=AUTH).json()["data"][0]["backend"].startswith("onnxruntime")
        assert httpx.post(f"{url}/admin/rollback", headers=AUTH).status_code == 200
        r = httpx.post(f"{url}/admin/reload", json={"artifact": str(bad)}, headers=AUTH)
        one_line_error(r, 422, "does not match the SHA-256 in onnx.json")
        assert httpx.get(f"{url}/v1/models", headers=AUTH).json()["data"][0]["backend"] == "pytorch"
    assert m["backend"] == "onnxruntime (model.onnx)" and m["tasks"] == ["news_topic"]
    pairs = list(zip(got["predictions"], want["predictions"]))
    assert [g["label"] for g, _ in pairs] == [w["label"] for _, w in pairs]
    assert max(abs(g["probs"][k] - w["probs"][k]) for g, w in pairs for k in w["probs"]) < 1e-4


def test_health_models_metrics_and_the_key(arts, news):
    "/health needs no key, every other route does (Bearer or X-API-Key); /v1/models names the artifact; /metrics counts"
    _, url = news
    assert httpx.get(f"{url}/health").json() == {"live": True, "ready": True}
    assert httpx.get(f"{url}/health/live").status_code == 200
    for h in ({}, {"Authorization": "Bearer wrong-key-000"}, {"X-API-Key": KEY[:-1]}):
        one_line_error(httpx.get(f"{url}/v1/models", headers=h), 401, "missing or wrong API key")
    m = httpx.get(f"{url}/v1/models", headers={"X-API-Key": KEY}).json()["data"][0]
    assert m["id"] == "news" and m["tasks"] == ["news_topic"] and m["generates"] is False
    assert m["sha256"] == hashlib.sha256((arts / "news" / MANIFEST).read_bytes()).hexdigest()
    assert m["labels"]["news_topic"] == load(arts / "news").model.labels["news_topic"]
    page = httpx.get(f"{url}/metrics", headers=AUTH).text
    for name in ("adaptnb_requests_total", "adaptnb_errors_total", "adaptnb_request_seconds_bucket",
                 "adaptnb_batch_size_bucket", "adaptnb_queue_depth"):
        assert name in page, name


def test_bad_requests_get_one_line(news):
    "Every bad request gets a 4xx and one line of JSON, never a traceback"
    _, url = news
    post = lambda **kw: httpx.post(f"{url}/predict", headers=AUTH | kw.pop("headers", {}), **kw)
    one_line_error(post(content="{not json"), 400, "the body is not JSON")
    one_line_error(post(content="[1, 2]"), 422, "the body must be a JSON object")
    one_line_error(post(json={"inputs": [1, 2]}), 422, "'inputs' must be a string or a list of strings")
    one_line_error(post(json={"text": "a"}), 422, "'inputs' must be a string or a list of strings")
    one_line_error(post(json={"inputs": []}), 422, "'inputs' is empty")
    one_line_error(post(json={"inputs": ["a"] * 9}), 422, "9 inputs is more than 8 per request")
    one_line_error(post(json={"inputs": ["a"], "task": "weather"}), 422, "unknown task 'weather'")
    one_line_error(post(json={"inputs": ["a"], "task": 7}), 422, "'task' must be a string")
    one_line_error(post(json={"inputs": ["a" * 5000]}), 413, "the body is over 4000 bytes")
    chunks = (b'{"inputs": ["' + b"a" * 1000 + b'"' for _ in range(5))  # no Content-Length: counted as it comes
    one_line_error(post(content=chunks), 413, "the body is over 4000 bytes")
    one_line_error(httpx.get(f"{url}/predict", headers=AUTH), 405, "Method Not Allowed")
    one_line_error(httpx.get(f"{url}/nowhere", headers=AUTH), 404, "Not Found")
    one_line_error(httpx.post(f"{url}/v1/completions", json={"prompt": "Hi"}, headers=AUTH), 404,
                   "is an encoder classifier")
    assert httpx.get(f"{url}/health").status_code == 200  # and the server is fine


def _client(url: str, n: int, out: list):
    "n requests in a row on one connection: (status, sha256 of the artifact that answered, seconds)"
    with httpx.Client(headers=AUTH, timeout=60) as c:
        for i in range(n):
            t0 = time.perf_counter()
            r = c.post(f"{url}/predict", json={"inputs": [TEXTS[i % len(TEXTS)]]})
            out.append((r.status_code, r.json().get("sha256"), time.perf_counter() - t0))


def test_hot_swap_under_load_fails_no_request(arts, news):
    "32 clients; a reload in the middle: every request answered (by the old model or the new); batches form"
    p, url = news
    sha = {n: hashlib.sha256((arts / n / MANIFEST).read_bytes()).hexdigest() for n in ("news", "news-v2")}
    got = []
    clients = [threading.Thread(target=_client, args=(url, 12, got)) for _ in range(32)]
    [t.start() for t in clients]
    time.sleep(0.5)
    r = httpx.post(f"{url}/admin/reload", json={"artifact": str(arts / "news-v2")}, headers=AUTH, timeout=60)
    [t.join(120) for t in clients]
    assert r.status_code == 200 and r.json()["serving"]["sha256"] == sha["news-v2"], r.text
    assert len(got) == 32 * 12 and {s for s, _, _ in got} == {200}  # none failed
    assert {h for _, h, _ in got} == {sha["news"], sha["news-v2"]}  # both answered: the swap came mid-run
    m = httpx.get(f"{url}/v1/models", headers=AUTH).json()["data"][0]
    assert m["sha256"] == sha["news-v2"]
    page = httpx.get(f"{url}/metrics", headers=AUTH).text
    sizes = [l for l in page.splitlines() if l.startswith('adaptnb_batch_size_bucket{le="1.0"}')]
    count = [l for l in page.splitlines() if l.startswith("adaptnb_batch_size_count")]
    assert float(sizes[0].split()[-1]) < float(count[0].split()[-1])  # some model calls took several requests
    # a failed load keeps the model serving and says why; rollback returns to the one before; SIGHUP reloads
    one_line_error(httpx.post(f"{url}/admin/reload", json={"artifact": str(arts / "news-bad")}, headers=AUTH,
                              timeout=60), 422, "still serving news-v2")
    one_line_error(httpx.post(f"{url}/admin/reload", json={"artifact": str(arts / "nothing")}, headers=AUTH,
                              timeout=60), 422, "is not a folder")
    assert httpx.get(f"{url}/v1/models", headers=AUTH).json()["data"][0]["sha256"] == sha["news-v2"]
    r = httpx.post(f"{url}/admin/rollback", headers=AUTH)
    assert r.status_code == 200 and r.json()["serving"]["sha256"] == sha["news"]
    p.send_signal(signal.SIGHUP)
    for _ in range(300):  # 30 s at most
        page = httpx.get(f"{url}/metrics", headers=AUTH).text
        if 'adaptnb_reloads_total{result="reloaded"} 2.0' in page:
            break
        time.sleep(0.1)
    assert 'adaptnb_reloads_total{result="reloaded"} 2.0' in page and 'result="failed"} 2.0' in page
    assert httpx.get(f"{url}/v1/models", headers=AUTH).json()["data"][0]["sha256"] == sha["news"]


def test_admin_routes_need_a_key(arts):
    "Without --api-key the service is open, but its admin routes are refused; the OpenAI routes serve a causal LM"
    with serving(arts / "news", key=None) as (_, url):
        assert httpx.post(f"{url}/predict", json={"inputs": TEXTS[:1]}).status_code == 200
        one_line_error(httpx.post(f"{url}/admin/reload", json={"artifact": str(arts / "news-v2")}), 403,
                       "admin routes are off")
        one_line_error(httpx.post(f"{url}/admin/rollback"), 403, "admin routes are off")


def test_full_queue_answers_503_with_retry_after(arts):
    "A burst past --max-queue is answered at once with 503 and Retry-After; every other request succeeds"
    with serving(arts / "news", "--max-queue", "2", "--max-batch", "1", "--max-wait-ms", "0") as (_, url):
        got, together = [], threading.Barrier(24)

        def one():
            together.wait(60)  # all at once: the queue of 2 fills even on a busy machine
            r = httpx.post(f"{url}/predict", json={"inputs": [LONG] * 8}, headers=AUTH, timeout=120)
            got.append((r.status_code, r.headers.get("retry-after"), r.json()))

        burst = [threading.Thread(target=one) for _ in range(24)]
        [t.start() for t in burst]
        [t.join(120) for t in burst]
        assert len(got) == 24 and {s for s, _, _ in got} == {200, 503}, sorted({s for s, _, _ in got})
        assert all(ra == "1" and "the queue is full" in b["error"] for s, ra, b in got if s == 503)
        assert httpx.get(f"{url}/health").status_code == 200


def test_sigterm_drains_requests_in_flight(arts):
    "SIGTERM while requests are in flight: each is answered, then the process exits 0"
    with serving(arts / "news", "--max-batch", "8") as (p, url):
        got = []

        def one():
            r = httpx.post(f"{url}/predict", json={"inputs": [LONG] * 16}, headers=AUTH, timeout=120)
            got.append(r.status_code)

        clients = [threading.Thread(target=one) for _ in range(8)]
        [t.start() for t in clients]
        for _ in range(200):  # until requests wait in the queue (the worker is on the first), 10 s at most
            queued = "adaptnb_queue_depth 0.0" not in httpx.get(f"{url}/metrics", headers=AUTH).text
            if queued:
                break
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        assert queued and not got  # the signal came while requests were in flight
        [t.join(120) for t in clients]
        assert p.wait(60) == 0, p.communicate()[1][-3000:]
        assert got == [200] * 8
        assert "Traceback" not in p.communicate()[1]


def test_openai_client_against_a_causal_artifact(arts):
    "The openai package, unchanged, against /v1/completions and /v1/chat/completions, plain and streamed"
    from openai import BadRequestError, OpenAI

    want = load(arts / "llm", device="cpu").generate(["Hello there"], max_new_tokens=4)[0]
    with serving(arts / "llm", "--max-tokens", "8") as (_, url):
        client = OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=60)
        assert [m.id for m in client.models.list().data] == ["llm"]
        r = client.completions.create(model="llm", prompt="Hello there", max_tokens=4)
        assert r.choices[0].text == want and r.usage.prompt_tokens == 2
        streamed = "".join(c.choices[0].text for c in client.completions.create(
            model="llm", prompt="Hello there", max_tokens=4, stream=True))
        assert streamed == want
        msgs = [{"role": "user", "content": "Say hi"}]
        chat = client.chat.completions.create(model="llm", messages=msgs, max_tokens=4)
        assert chat.choices[0].message.role == "assistant" and isinstance(chat.choices[0].message.content, str)
        parts = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="llm", messages=msgs, max_tokens=4, stream=True) if c.choices]
        assert "".join(parts) == chat.choices[0].message.content
        with pytest.raises(BadRequestError) as e:  # 400, as OpenAI answers a prompt over the context
            client.completions.create(model="llm", prompt="word " * 70, max_tokens=4)
        assert "over the model's context of 64 tokens" in e.value.response.json()["error"]
        one_line_error(httpx.post(f"{url}/v1/completions", json={"prompt": "Hi", "max_tokens": 9}, headers=AUTH),
                       422, "'max_tokens' must be an integer from 1 to 8")
        one_line_error(httpx.post(f"{url}/v1/chat/completions", json={"messages": "Hi"}, headers=AUTH), 422,
                       "'messages' must be a non-empty list")
        one_line_error(httpx.post(f"{url}/predict", json={"inputs": ["Hi"]}, headers=AUTH), 422,
                       "records no task to predict")


def test_command_mistakes_are_one_line(arts, capsys):
    "Port in use, missing or tampered artifact, a bad key or port: exit 2 and one line, before anything is served"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        cases = [([arts / "news", "--port", busy], f"port {busy} is in use on 127.0.0.1"),
                 ([arts / "nothing", "--port", free_port()], "is not a folder"),
                 ([arts / "news-bad", "--port", free_port()], "heads.safetensors"),
                 ([arts / "news", "--api-key", "short"], "at least 8 printable ASCII characters"),
                 ([arts / "news", "--port", "70000"], "is not a port"),
                 ([arts / "news", "--max-batch", "0"], "--max-batch must be 1 or more")]
        for args, msg in cases:
            rc, out, err = main_cli(capsys, "serve", *args)
            assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    r = subprocess.run([ADAPTNB, "serve", str(arts / "news-bad"), "--port", str(free_port())], env=ENV,
                       capture_output=True, text=True, timeout=120)  # the real command, in a process of its own
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "heads.safetensors" in r.stderr, r.stderr
