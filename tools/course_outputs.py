"""Outputs fit to commit: what `python tools/build_course.py --write-outputs` writes back into the notebooks.

An executed notebook's outputs are made deterministic and small before they are written: stderr (warnings, tqdm)
and widget views (they need a kernel) are dropped; wall times in printed text (`12.3 s`, `seconds=0.8`,
`'eval_runtime': '0.29'`, clock-named run ids) are masked except in cells marked `#| timing`, and so are random
temporary-folder names; PNG plots are re-encoded as 256-colour palettes (Pillow),
halved in size while still over the limit; long text is cut in the middle. No output is left over `LIMIT` bytes.
The file is then cleaned by nbdev's own `nbdev_clean`, so that CI's `nbdev-clean` finds nothing to change.
"""
from __future__ import annotations
import base64, io, json, re
from pathlib import Path

import nbformat

LIMIT = 200_000  # bytes of one output, as stored (JSON)
WIDGET = "application/vnd.jupyter.widget-view+json"
_TIME = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:\s?)(ms|s|sec|seconds|min|minutes)\b")
_RATE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s?(it/s|s/it)\b")
_TMP = re.compile(r"(?<=[/\\])tmp[A-Za-z0-9_]{6,10}(?=[/\\'\"\s]|$)")
_KEYED = re.compile(r"((?:seconds|runtime|elapsed|_time|per_second)['\"]?\s*[:=]\s*['\"]?)\d+(?:\.\d+)?(?:e-?\d+)?")
_STAMP = re.compile(r"\b20\d{6}-\d{6}\b")  # run ids named by the clock, as 20250102-101112


def scrub_text(text: str, keep_times: bool = False) -> str:
    "Printed text without what changes from run to run: wall times (unless kept) and temporary-folder names"
    if not keep_times:
        text = _KEYED.sub(r"\1…", _RATE.sub(r"… \1", _TIME.sub(r"… \1", text)))
        text = _STAMP.sub("YYYYMMDD-HHMMSS", text)
    return _TMP.sub("tmpXXXXXXXX", text)


def compress_png(b64: str, limit: int = LIMIT) -> str:
    "A base64 PNG re-encoded as a 256-colour palette (halved while over `limit`), or the original if that is smaller"
    from PIL import Image
    img = Image.open(io.BytesIO(base64.b64decode(b64)))
    img.load()
    if img.mode == "RGBA" and img.getextrema()[3][0] == 255: img = img.convert("RGB")
    if img.mode not in ("RGB", "RGBA"): img = img.convert("RGBA")
    method = Image.Quantize.MEDIANCUT if img.mode == "RGB" else Image.Quantize.FASTOCTREE
    while True:
        buf = io.BytesIO()
        img.quantize(256, method=method, dither=Image.Dither.NONE).save(buf, "PNG", optimize=True)
        out = base64.b64encode(buf.getvalue()).decode()
        if len(out) <= limit or min(img.size) < 64: break
        img = img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS)
    return out if len(out) < len(b64.strip()) else b64.strip()


def cut_text(text: str, limit: int) -> str:
    "Text cut in the middle to about `limit` characters (at line ends where it has any), saying what was left out"
    if len(text) <= limit: return text
    head, tail = text[:limit // 2], text[-(limit // 2):]
    if "\n" in head: head = head[:head.rfind("\n") + 1]
    if "\n" in tail[:-1]: tail = tail[tail.find("\n") + 1:]
    cut = text[len(head):len(text) - len(tail)]
    note = f"… ({cut.count(chr(10))} lines, {len(cut):,} characters cut by build_course --write-outputs) …\n"
    return head + note + tail


def _size(o) -> int:
    return len(json.dumps(o, ensure_ascii=False))


def clean_output(o, keep_times: bool = False, limit: int = LIMIT):
    "One output fit to commit, or None to drop it (stderr, widget views)"
    if o.get("output_type") == "stream":
        if o.get("name") == "stderr": return None
        o["text"] = cut_text(scrub_text(o["text"], keep_times), limit // 2)
        return o
    data = o.get("data", {})
    if WIDGET in data: return None
    for k, v in list(data.items()):
        if k == "image/png": data[k] = compress_png(v, limit)
        elif k.startswith("text/") and isinstance(v, str): data[k] = scrub_text(v, keep_times)
    if _size(o) > limit and "text/html" in data and "text/plain" in data: del data["text/html"]
    return o


def clean_outputs(outputs: list, keep_times: bool = False, limit: int = LIMIT) -> list:
    "A cell's outputs fit to commit; ValueError if one is still over `limit`"
    out = [c for c in (clean_output(o, keep_times, limit) for o in outputs) if c is not None]
    big = [_size(o) for o in out if _size(o) > limit]
    if big: raise ValueError(f"an output of {max(big):,} bytes is over the {limit:,}-byte limit even compressed")
    return out


def write_notebook(nb, path: Path) -> None:
    "Write `nb` to `path` and clean it with nbdev's `nbdev_clean`, as CI's `nbdev-clean` would"
    from nbdev.clean import nbdev_clean
    nbformat.write(nb, str(path))
    nbdev_clean(fname=str(path))
