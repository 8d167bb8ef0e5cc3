"""TeX in markdown to MathML at build time: the pages carry their equations typeset, with no script and no network.

`latex2mathml` (PyPI) converts each `$...$` and `$$...$$` of a markdown text; the browser lays out the MathML
(MathML Core: Chromium 109+, Firefox, Safari). Code spans, fenced code and `\\$` are left alone. A formula that
cannot be converted stays as TeX in a `<code class="tex-error">` and is listed, so that a build can fail on it.
"""
from __future__ import annotations
import html, re

from latex2mathml.converter import convert

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.S)
_DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.S)
# pandoc's rule for inline math: no space after the opening `$`, none before the closing one, no digit after it
_FUNCTION = re.compile(r"(<mi>(?:ln|log|exp|sin|cos|tan|max|min|arg|det|dim|lim)</mi>)(?!<mo>)")
# commands latex2mathml passes through as text in some positions (`\big\langle`, `\arg`): the symbols they mean
_LEFT_RAW = {"\\langle": "&#x027E8;", "\\rangle": "&#x027E9;", "\\arg": "arg"}
_RAW_TEX = re.compile(r"\\[A-Za-z]+")
_INLINE = re.compile(r"(?<![\\$\w])\$(?![\s$])((?:[^$\\\n]|\\.|\n(?!\s*\n))+?)(?<![\s\\])\$(?![\d$])")


def tex_to_mathml(tex: str, display: bool = False) -> str:
    "One TeX formula as a `<math>` element (its TeX kept in `alttext` for screen readers and copying)"
    m = convert(tex.strip(), display="block" if display else "inline")
    for raw, sym in _LEFT_RAW.items():
        m = m.replace(f">{raw}<", f">{sym}<")
    if _RAW_TEX.search(m):  # a command latex2mathml did not know would show as raw TeX: fail the formula
        raise ValueError(f"raw TeX left in the MathML: {_RAW_TEX.findall(m)}")
    m = _FUNCTION.sub(r'\1<mspace width="0.167em"></mspace>', m)  # `\ln 5` reads "ln 5", not "ln5"
    alt = html.escape(" ".join(tex.split()), quote=True).replace("|", "&#124;")  # a `|` would split a table row
    return m.replace("<math ", f'<math alttext="{alt}" ', 1)


def _convert_text(text: str, failed: list[str]) -> str:
    "Math of a markdown text that holds no code, converted"
    def sub(m, display):
        try: return tex_to_mathml(m.group(1), display)
        except Exception:  # latex2mathml raises its own errors and plain ones for unsupported commands
            failed.append(m.group(1))
            return f'<code class="tex-error">{html.escape(m.group(0))}</code>'
    text = _DISPLAY.sub(lambda m: sub(m, True), text)
    return _INLINE.sub(lambda m: sub(m, False), text)


def _convert_prose(text: str, failed: list[str]) -> str:
    "Math outside the code spans of a run of markdown lines"
    out, last = [], 0
    for m in _CODE_SPAN.finditer(text):
        out += [_convert_text(text[last:m.start()], failed), m.group(0)]
        last = m.end()
    return "".join(out + [_convert_text(text[last:], failed)])


def markdown_math(md: str, failed: list[str] | None = None) -> str:
    "The markdown with every formula outside code replaced by MathML; formulas that failed are appended to `failed`"
    failed = [] if failed is None else failed
    out, prose, fence = [], [], None
    for line in md.splitlines(keepends=True):
        m = _FENCE.match(line)
        if fence is None and m:
            out.append(_convert_prose("".join(prose), failed))
            prose, fence = [], m.group(2)[0] * len(m.group(2))
            out.append(line)
        elif fence is not None:
            out.append(line)
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]): fence = None
        else: prose.append(line)
    out.append(_convert_prose("".join(prose), failed))
    return "".join(out)
