"""Few labels (issue 34): the probe's L2 chosen by folds of the pooled few rows, as the flow chooses it, against fixed
strong L2s, each scored on the task's whole test split (log loss / accuracy). The examples are those bench/fewshot.py
draws (k a class from train, by the seed); the folds' choice reproduces the probes that bench shipped. A few minutes on
a CPU; not run in CI.

    python bench/probe_l2.py
"""
import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch, numpy as np, torch.nn.functional as F
from adaptnb.data import load_task
from adaptnb.core import MultiTaskModel
from adaptnb.score import features
from adaptnb.heads import _lbfgs_logreg, _l2_by_folds, L2_GRID
m = MultiTaskModel.from_pretrained("default")
grid = sorted(L2_GRID, reverse=True)
for task, runs in {"movie_sentiment": [(8, 0), (8, 1), (8, 2), (16, 0), (16, 1), (16, 2)],
                   "news_topic": [(8, 0), (16, 0)], "zh_review_sentiment": [(8, 0)]}.items():
    t = load_task(task)
    Xt = features(m, t.test, max_length=64).double(); yt = torch.tensor(t.test["label"])
    ytr = np.asarray(t.train["label"])
    for k, seed in runs:
        rng = np.random.default_rng(seed)  # bench/fewshot.py's user_data: k a class from train, by the seed
        ix = np.concatenate([rng.permutation(np.flatnonzero(ytr == c))[:k] for c in np.unique(ytr)])
        sub = t.train.select(ix)
        X = features(m, sub, max_length=64).double(); y = torch.tensor(sub["label"])
        mu, sd = X.mean(0), X.std(0).clamp(min=1e-6); Z, Zt = (X - mu) / sd, (Xt - mu) / sd
        ch, _ = _l2_by_folds(Z, y, t.num_labels, grid, 100, seed)
        out = []
        for name, g in (("folds", ch), ("L2=10", 10.0), ("L2=1", 1.0)):
            W, b = _lbfgs_logreg(Z, y, t.num_labels, g); z = Zt @ W.T + b
            out.append(f"{name}({g:g}) {float(F.cross_entropy(z, yt)):.3f}/{float((z.argmax(1) == yt).double().mean()):.3f}")
        print(f"{task:20s} k={k:<3d} seed {seed}: " + "  ".join(out), flush=True)
