"""`show_doc`'s markdown as an API reference block: name, source link, signature, docstring, parameter table.

nbdev 3's `show_doc` writes a heading, the signature as a code block with each parameter's doc as a comment
beside it (fastcore's docments), and the docstring in italics. Here the signature is parsed with `ast` and its
comments with `tokenize`, so that each parameter gets a row: name, type, default, details. A class (a dataclass,
shown by show_doc as its constructor) takes its fields' docs from the comments beside them in its definition. A
signature that does not parse as Python keeps its code block.
"""
from __future__ import annotations
import ast, html, io, re, tokenize

from nbconvert.filters import markdown2html

_HEAD = re.compile(r"^#{2,4} (.+)$", re.M)
_SIG = re.compile(r"```python\n(.*?)\n```", re.S)
_SOURCE = re.compile(r"\[source\]\(([^)]+)\)(\{[^}]*\})?")
_DOC = re.compile(r"\n\*(.+?)\*\s*$", re.S)


def is_show_doc_markdown(md: str) -> bool:
    "Whether a text/markdown output is show_doc's: a heading and a python signature block"
    return bool(_HEAD.search(md) and _SIG.search(md) and md.lstrip().startswith("---"))


def _comments(sig: str) -> dict[int, str]:
    "The comment on each line of the signature, by line number"
    out = {}
    for t in tokenize.generate_tokens(io.StringIO(sig).readline):
        if t.type == tokenize.COMMENT: out[t.start[0]] = t.string.lstrip("#").strip()
    return out


def parse_signature(sig: str):
    "(kind, name, [(param, type, default, doc)], return type) of a show_doc signature, or None if it does not parse"
    kind = "class" if sig.lstrip().startswith("class ") else "def"
    src = re.sub(r"^\s*class ", "def ", sig.rstrip(), count=1)
    src = (src if src.endswith(":") else src + ":") + "\n    pass"
    try:
        fn = ast.parse(src).body[0]
        notes = _comments(src)
    except (SyntaxError, tokenize.TokenError, IndexError): return None
    a = fn.args
    pos = a.posonlyargs + a.args
    defaults = [None] * (len(pos) - len(a.defaults)) + list(a.defaults)
    named = list(zip(pos, defaults)) + list(zip(a.kwonlyargs, a.kw_defaults))
    if a.vararg: named.insert(len(pos), (a.vararg, None))
    if a.kwarg: named.append((a.kwarg, None))
    star = {id(a.vararg): "*", id(a.kwarg): "**"}
    rows = [(star.get(id(p), "") + p.arg, ast.unparse(p.annotation) if p.annotation else "",
             ast.unparse(d) if d is not None else "", notes.get(p.lineno, "")) for p, d in named]
    return kind, fn.name, rows, ast.unparse(fn.returns) if fn.returns else ""


def class_fields(source: str) -> dict[str, dict[str, str]]:
    "The comment beside each annotated field of each class a cell defines: {class: {field: doc}}"
    try:
        tree, notes = ast.parse(source), _comments(source)
    except (SyntaxError, tokenize.TokenError): return {}
    return {c.name: {a.target.id: notes.get(a.lineno, "") for a in c.body
                     if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name)}
            for c in ast.walk(tree) if isinstance(c, ast.ClassDef)}


def _inline(md: str) -> str:
    "Markdown of one paragraph as inline HTML"
    return re.sub(r"^<p>(.*)</p>\s*$", r"\1", markdown2html(md).strip(), flags=re.S)


def _signature_line(kind: str, name: str, rows, ret: str) -> str:
    "The signature as the reader types it: one line, or one parameter a line when long"
    parts = [p + (f": {t}" if t else "") + ((" = " if t else "=") + d if d else "") for p, t, d, _ in rows]
    one = f"{kind} {name}({', '.join(parts)})" + (f" -> {ret}" if ret else "")
    if len(one) <= 100: return one
    return f"{kind} {name}(\n" + "".join(f"    {p},\n" for p in parts) + ")" + (f" -> {ret}" if ret else "")


def _table(rows) -> str:
    "The parameters as an HTML table"
    code = lambda s: f"<code>{html.escape(s)}</code>" if s else ""
    body = "".join(f"<tr><td>{code(p)}</td><td>{code(t)}</td><td>{code(d)}</td>"
                   f"<td>{_inline(doc) if doc else ''}</td></tr>" for p, t, d, doc in rows)
    return ('<table class="api-params"><thead><tr><th>parameter</th><th>type</th><th>default</th><th>details</th>'
            f"</tr></thead><tbody>{body}</tbody></table>")


def _with_fields(parsed, fields: dict[str, str] | None):
    "A class's signature read as its fields, each with the comment written beside it in the class body"
    if not parsed or fields is None: return parsed
    rows = [(p, t, d, doc or fields.get(p, "")) for p, t, d, doc in parsed[2]]
    return "class", parsed[1], rows, ""


def api_reference_html(md: str, classes: dict[str, dict[str, str]] | None = None) -> str:
    "show_doc's markdown as an HTML API reference block; `classes` gives the field docs of the classes it may show"
    title = _HEAD.search(md).group(1).strip()
    sig = _SIG.search(md).group(1)
    src = _SOURCE.search(md)
    doc = _DOC.search(md[_SIG.search(md).end():])
    parsed = _with_fields(parse_signature(sig), (classes or {}).get(title))
    link = f' <a class="api-source" href="{html.escape(src.group(1))}">source</a>' if src else ""
    anchor = re.sub(r"[^\w.-]", "-", title)
    out = [f'<div class="api-ref"><h3 class="api-name" id="{anchor}"><code>{html.escape(title)}</code>{link}</h3>']
    line = _signature_line(parsed[0], title.split(".")[-1], parsed[2], parsed[3]) if parsed else sig
    out.append(f'<pre class="api-sig"><code>{html.escape(line)}</code></pre>')
    if doc: out.append(f'<div class="api-doc">{_inline(doc.group(1))}</div>')
    if parsed and parsed[2]: out.append(_table(parsed[2]))
    return "".join(out) + "</div>"
