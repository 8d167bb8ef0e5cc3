"The measured matmul peak that the benches report their share of, and the FLOPs a token costs (imported by bench/train.py, bench/eval.py and bench/causal_train.py)."
import time
import torch


def matmul_peak(dev, dtype=None, n=2048, reps=8) -> float:
    "Measured peak FLOP/s of a square n x n matmul on `dev` at `dtype` (None: fp32), the best of three timings"
    x = torch.randn(n, n, device=dev, dtype=dtype or torch.float32); y = torch.randn_like(x)
    for _ in range(2): x @ y
    best = 0
    for _ in range(3):
        if dev.type == "cuda": torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps): x @ y
        if dev.type == "cuda": torch.cuda.synchronize()
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0))
    return best


def flops_per_token(body, tokens: float, train: bool = True) -> float:
    "FLOPs per real token of an encoder `body` at `tokens` per text: 2N + 4·L·h·T forward (N non-embedding weights), 3x that to train"
    cfg = body.config
    n = sum(p.numel() for k, p in body.named_parameters() if "embeddings" not in k and "pooler" not in k)
    forward = 2 * n + 4 * cfg.num_hidden_layers * cfg.hidden_size * tokens
    return 3 * forward if train else forward
