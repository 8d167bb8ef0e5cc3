"""Serving under load: `adaptnb serve` (dynamic batching) against the server a user would write.

The reference is a FastAPI endpoint (a plain `def`, so FastAPI runs it in its thread pool) that calls
`transformers.pipeline("text-classification")` on each request's texts: the artifact is cls-pooled and one task, so
it loads in the pipeline as `AutoModelForSequenceClassification` with adaptnb's probabilities. Both servers run at
the same time, each in a process of its own under uvicorn on a loopback port, serving the same artifact (MiniLM with a
news_topic probe); each request is one real news_topic test text. Runs are interleaved (adaptnb, reference, at each
number of concurrent clients, then again for the next round), each bounded in requests and seconds, and the median
round counts (min-max beside it). Then 32 clients against adaptnb while `POST /admin/reload` swaps in a second
artifact: requests sent, failed, and p99 latency before, during and after the swap.

Two more servers run beside the two, interleaved the same way: `adaptnb serve` of the same artifact's ONNX export
(`adaptnb onnx --int8`: onnxruntime, fp32 graph) and of its int8 graph (`adaptnb serve EXPORT --int8`, onnxruntime's
dynamic int8 quantisation). Before the timed runs, the same test texts go to every server, 32 a request, and the
JSON records each ONNX server's agreement with the PyTorch server (`agreement`): the largest absolute difference of
any class probability, and the share of texts given the same label.

    python bench/serve.py [--clients 1,8,32,128] [--rounds 3] [--seconds 10] [--json bench/results/serve.json]

Loopback only; every run ends after its requests or its seconds, whichever comes first.
"""
import argparse, asyncio, itertools, json, os, signal, socket, statistics, subprocess, sys, tempfile, time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
REQUESTS = {1: 60, 8: 240, 32: 480, 128: 640}  # per run, at most
AGREE_TEXTS = 512  # test texts sent to every server for the agreement of their probabilities (all, if fewer)


def reference_app(artifact: str):
    "The server a user writes by hand: the pipeline called on each request's texts"
    from fastapi import FastAPI
    from transformers import pipeline

    pipe = pipeline("text-classification", model=artifact, top_k=None, truncation=True, max_length=64,
                    device="cpu")
    app = FastAPI()

    @app.post("/predict")
    def predict(body: dict):
        return {"predictions": pipe(body["inputs"])}

    return app


def make_artifacts(out: Path) -> tuple[Path, Path]:
    "Two cls-pooled news_topic artifacts of MiniLM (probes fit on different samples): served, then swapped in"
    from adaptnb.core import MultiTaskModel
    from adaptnb.data import load_task
    from adaptnb.deploy import export
    from adaptnb.heads import fit_probe

    base = MultiTaskModel.from_pretrained("default")
    m = MultiTaskModel(base.body, pooling="cls", tokenizer=base.tokenizer).eval()
    fit_probe(m, load_task("news_topic", max_per_class=40), max_length=64)
    a = export(m, out / "news", max_length=64)
    fit_probe(m, load_task("news_topic", max_per_class=40, seed=1), max_length=64, seed=1)
    b = export(m, out / "news-v2", max_length=64)
    return a, b


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str]) -> tuple[subprocess.Popen, str]:
    "A server process on a free loopback port, once it answers; its Popen and URL"
    port = free_port()
    p = subprocess.Popen([*cmd, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(1200):  # 120 s at most
        if p.poll() is not None:
            raise SystemExit(f"{cmd[:3]} ended: {p.stderr.read()[-2000:]}")
        try:
            httpx.post(f"{url}/predict", json={"inputs": ["warm up"]}, headers=AUTH, timeout=5).raise_for_status()
            return p, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{cmd[:3]} did not answer in 120 s")


def agreement(urls: dict, texts: list[str], chunk: int = 32) -> dict:
    "Each server's probabilities for `texts` against the first's (PyTorch): largest |difference| and same-label share"
    got = {}
    with httpx.Client(headers=AUTH, timeout=120) as c:
        for n, url in urls.items():
            got[n] = []
            for i in range(0, len(texts), chunk):
                r = c.post(f"{url}/predict", json={"inputs": texts[i : i + chunk]}).raise_for_status()
                got[n] += r.json()["predictions"]
    base, *others = urls
    out = {}
    for n in others:
        diff = max(abs(p["probs"][k] - q["probs"][k]) for p, q in zip(got[base], got[n]) for k in p["probs"])
        same = sum(p["label"] == q["label"] for p, q in zip(got[base], got[n])) / len(texts)
        out[n] = {"against": base, "texts": len(texts), "max_abs_prob_diff": diff, "label_agreement": same}
    return out


def peak_rss_mib(pid: int) -> float:
    "The process's peak resident memory (VmHWM), MiB"
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def load(url: str, clients: int, n: int, seconds: float, texts: list[str], stop=None) -> list:
    "(start, seconds, status) of each one-text request of `clients` concurrent clients, until `n`, `seconds` or `stop`"
    out, ticket, deadline = [], itertools.count(), time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(headers=AUTH, timeout=120, limits=limits) as c:

        async def client():
            for i in iter(lambda: next(ticket), n):  # request i of n, until n are taken or time is up
                if time.perf_counter() > deadline or (stop is not None and stop.is_set()):
                    break
                t0 = time.perf_counter()
                try:
                    r = await c.post(f"{url}/predict", json={"inputs": [texts[i % len(texts)]]})
                    status = r.status_code
                except httpx.HTTPError:
                    status = 0
                out.append((t0, time.perf_counter() - t0, status))

        await asyncio.gather(*[client() for _ in range(clients)])
    return out


def summary(rows: list) -> dict:
    "Throughput, latency percentiles and errors of one run"
    lat = np.array([s for _, s, _ in rows]) * 1000
    wall = max(t + s for t, s, _ in rows) - min(t for t, _, _ in rows)
    return {"requests": len(rows), "errors": sum(st != 200 for _, _, st in rows), "seconds": wall,
            "throughput": len(rows) / wall, "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99))}


def med(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def hot_swap(url: str, artifact: Path, texts: list[str], seconds: float) -> dict:
    "32 clients; a reload after `seconds`/2; as long again after it: failures and p99 before, during and after"
    async def run():
        stop = asyncio.Event()
        task = asyncio.create_task(load(url, 32, 10**9, 300, texts, stop))  # until `stop` (300 s at most)
        await asyncio.sleep(seconds / 2)
        t0 = time.perf_counter()
        async with httpx.AsyncClient(headers=AUTH, timeout=120) as c:
            r = await c.post(f"{url}/admin/reload", json={"artifact": str(artifact)})
        t1 = time.perf_counter()
        await asyncio.sleep(seconds / 2)
        stop.set()
        return await task, (t0, t1, r.status_code)

    rows, (t0, t1, status) = asyncio.run(run())
    p99 = lambda sel: float(np.percentile([s * 1000 for s in sel], 99)) if sel else None
    return {"reload_status": status, "reload_seconds": t1 - t0, "requests": len(rows),
            "failed": sum(st != 200 for _, _, st in rows),
            "p99_ms_before": p99([s for t, s, _ in rows if t + s < t0]),
            "p99_ms_during": p99([s for t, s, _ in rows if t < t1 and t + s > t0]),
            "p99_ms_after": p99([s for t, s, _ in rows if t > t1]),
            "timeline": [(round(t - rows[0][0], 4), round(s * 1000, 2)) for t, s, _ in sorted(rows)],
            "reload_window": (t0 - min(t for t, _, _ in rows), t1 - min(t for t, _, _ in rows))}


def plot(res: dict, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    for name in res["servers"]:
        cs = [int(c) for c in res["levels"]]
        for k, a in (("throughput", ax[0]), ("p99_ms", ax[1])):
            m = [res["levels"][str(c)][name][k] for c in cs]
            a.errorbar(cs, [x["median"] for x in m], yerr=[[x["median"] - x["min"] for x in m],
                       [x["max"] - x["median"] for x in m]], marker="o", capsize=3, label=name)
    ax[0].set(xscale="log", xlabel="concurrent clients", ylabel="requests / s", title="throughput (median, min-max)")
    ax[1].set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="ms", title="p99 latency")
    for a in ax[:2]:
        a.legend()
    h = res["hot_swap"]
    t, s = zip(*h["timeline"])
    ax[2].scatter(t, s, s=4)
    ax[2].axvspan(*h["reload_window"], color="orange", alpha=0.3, label="reload")
    ax[2].set(xlabel="s", ylabel="latency, ms", yscale="log",
              title=f"adaptnb serve, 32 clients, hot swap: {h['failed']} of {h['requests']} failed")
    ax[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", default="1,8,32,128")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10, help="seconds per run at most")
    ap.add_argument("--json", default=str(ROOT / "bench/results/serve.json"))
    ap.add_argument("--reference", default=None, help=argparse.SUPPRESS)  # internal: run the reference server
    ap.add_argument("--port", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.reference:
        import uvicorn

        uvicorn.run(reference_app(a.reference), host="127.0.0.1", port=a.port, log_level="warning")
        return
    from adaptnb.data import load_task

    t_start, load_start = time.time(), os.getloadavg()[0]
    texts = list(load_task("news_topic").test["text"])
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    art, art2 = make_artifacts(work)
    from adaptnb.onnx_export import export_onnx

    onnx = export_onnx(art, work / "news-onnx", int8=True)  # the artifact as one ONNX graph, and its int8 twin
    adaptnb = str(Path(sys.executable).with_name("adaptnb"))
    servers = {"adaptnb": start([adaptnb, "serve", str(art), "--api-key", KEY]),
               "adaptnb-onnx": start([adaptnb, "serve", str(onnx), "--api-key", KEY]),
               "adaptnb-onnx-int8": start([adaptnb, "serve", str(onnx), "--int8", "--api-key", KEY]),
               "reference": start([sys.executable, __file__, "--reference", str(art)])}
    clients = [int(c) for c in a.clients.split(",")]
    runs = {c: {n: [] for n in servers} for c in clients}
    try:
        agree = agreement({n: url for n, (_, url) in servers.items() if n != "reference"}, texts[:AGREE_TEXTS])
        for n, g in agree.items():
            print(f"agreement {n} with adaptnb (PyTorch), {g['texts']} texts: max |dp| {g['max_abs_prob_diff']:.2e}, "
                  f"same label {g['label_agreement']:.1%}", flush=True)
        for name, (_, url) in servers.items():  # warm-up, not timed: the first calls of each shape are slow
            asyncio.run(load(url, 8, 96, 60, texts))
        for r in range(a.rounds):
            for c in clients:
                k = (r + clients.index(c)) % len(servers)
                order = list(servers)[k:] + list(servers)[:k]  # each server first in turn
                for name, url in [(n, servers[n][1]) for n in order]:
                    s = summary(asyncio.run(load(url, c, REQUESTS.get(c, 4 * c), a.seconds, texts)))
                    runs[c][name].append(s)
                    print(f"round {r} clients {c:>3} {name:<17} {s['throughput']:7.1f} req/s  p50 {s['p50_ms']:7.1f} ms"
                          f"  p99 {s['p99_ms']:7.1f} ms  errors {s['errors']}", flush=True)
        rss = {n: peak_rss_mib(p.pid) for n, (p, _) in servers.items()}
        swap = hot_swap(servers["adaptnb"][1], art2, texts, a.seconds)
        swap["adaptnb_peak_rss_mib_after"] = peak_rss_mib(servers["adaptnb"][0].pid)  # two models held: rollback
        p99s = ", ".join(f"{k} {swap['p99_ms_' + k] or float('nan'):.1f} ms" for k in ("before", "during", "after"))
        print(f"hot swap: {swap['failed']} of {swap['requests']} failed; reload {swap['reload_seconds']:.1f} s; "
              f"p99 {p99s}", flush=True)
    finally:
        for p, _ in servers.values():
            p.send_signal(signal.SIGTERM)
        codes = {n: p.wait(60) for n, (p, _) in servers.items()}
    levels = {str(c): {n: {k: med([x[k] for x in runs[c][n]]) for k in ("throughput", "p50_ms", "p99_ms")}
                       | {"errors": sum(x["errors"] for x in runs[c][n]),
                          "requests": sum(x["requests"] for x in runs[c][n])}
                       for n in servers} for c in clients}
    ours = [n for n in servers if n != "reference"]
    for c in clients:  # each of ours against the reference: ratio_throughput, ratio_p99 (adaptnb), ..._onnx_int8
        L = levels[str(c)]
        for n in ours:
            sfx = n.replace("adaptnb", "").replace("-", "_")
            L["ratio_throughput" + sfx] = L[n]["throughput"]["median"] / L["reference"]["throughput"]["median"]
            L["ratio_p99" + sfx] = L[n]["p99_ms"]["median"] / L["reference"]["p99_ms"]["median"]
        L["target_3x_at_equal_p99"] = {n: L[n]["throughput"]["median"] >= 3 * L["reference"]["throughput"]["median"]
                                       and L[n]["p99_ms"]["median"] <= L["reference"]["p99_ms"]["median"] for n in ours}
    res = {"reference": "FastAPI def endpoint calling transformers.pipeline('text-classification') per request",
           "artifact": "MiniLM (default), cls pooling, news_topic linear probe, max_length 64, fp32",
           "adaptnb_options": "defaults: --max-batch 32 --max-wait-ms 5 (waits only for requests on their way) "
                              "--max-queue 256", "rounds": a.rounds,
           "servers": {"adaptnb": "adaptnb serve ARTIFACT (PyTorch)", "adaptnb-onnx": "adaptnb serve ONNX_EXPORT "
                       "(onnxruntime, fp32 graph)", "adaptnb-onnx-int8": "adaptnb serve ONNX_EXPORT --int8 "
                       "(onnxruntime, dynamic int8 graph)", "reference": "the reference below"},
           "agreement": agree, "seconds_per_run": a.seconds, "levels": levels, "peak_rss_mib": rss,
           "exit_codes_on_sigterm": codes,
           "hot_swap": swap, "cpus": os.cpu_count(), "torch_threads": __import__("torch").get_num_threads(),
           "wall_seconds": time.time() - t_start, "loadavg_1min": {"start": load_start, "end": os.getloadavg()[0]}}
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    plot(res, out.with_suffix(".png"))
    f = lambda d: f"{d['median']:.1f} ({d['min']:.1f}-{d['max']:.1f})"
    print(f"\nrequests/s, median (min-max) of {a.rounds} rounds; x: against the reference; p99 in ms")
    print(f"{'clients':>7} " + " ".join(f"{n:>22}" for n in servers) + " " + " ".join(f"{'x' + n[7:]:>8}"
          for n in ours) + " " + " ".join(f"{'p99 ' + n:>14}" for n in servers))
    for c in clients:
        L = levels[str(c)]
        print(f"{c:>7} " + " ".join(f"{f(L[n]['throughput']):>22}" for n in servers) + " "
              + " ".join(f"{L['ratio_throughput' + n.replace('adaptnb', '').replace('-', '_')]:>8.2f}" for n in ours)
              + " " + " ".join(f"{L[n]['p99_ms']['median']:>14.1f}" for n in servers))
    print(f"peak RSS MiB: {rss}; exit codes on SIGTERM: {codes}; wrote {out} and {out.with_suffix('.png')} "
          f"in {res['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
