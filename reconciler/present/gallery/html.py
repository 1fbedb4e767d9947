"""Pure: the gallery's data → HTML pages, a stylesheet and a small script. No server, no CDN, no network.

Every page works opened from disk (file://). Without the script a thumbnail links to its full image; with
it, the full image opens in a dialog: Enter or a click opens it, ←/→ step through the page's images, Escape
closes it and gives the focus back. Alt text comes from each image's parameters.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from reconciler.present.gallery.model import Earlier, Gallery, GenerationView, Grid, MatrixView, ModelView, Picture
from reconciler.text import plural

STYLE = "style.css"
SCRIPT = "gallery.js"
THUMBS = "thumbs"


def render(gallery: Gallery, project: str) -> dict[str, str]:
    """Every file of the gallery but the thumbnails: relative path → text. `project` is the project folder
    as seen from the gallery folder (e.g. `..`)."""
    files = {STYLE: CSS, SCRIPT: JS, "index.html": _index(gallery, project)}
    for view in gallery.generations:
        files[view.page] = _generation_page(gallery, view, project)
    for matrix in gallery.matrices:
        files[matrix.page] = _matrix_page(gallery, matrix, project)
        for member in matrix.members:
            files[member.page] = _generation_page(gallery, member, project, matrix)
    return files


# --- layout -------------------------------------------------------------------------------------------


def _up(page: str) -> str:
    """From a page to the gallery folder: `` for index.html, `../` for g/x.html."""
    return "../" * page.count("/")


def _page(gallery: Gallery, page: str, title: str, body: str, crumbs: list[tuple[str, str]]) -> str:
    up = _up(page)
    trail = "".join(f'<li><a href="{up}{escape(href)}">{escape(text)}</a></li>' for href, text in crumbs)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · {escape(gallery.title)}</title>
<link rel="stylesheet" href="{up}{STYLE}">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
<nav aria-label="Breadcrumb"><ol class="crumbs"><li><a href="{up}index.html">{escape(gallery.title)}</a></li>{trail}</ol></nav>
</header>
<main id="main">
{body}
</main>
<dialog id="viewer" aria-label="Full-size image">
<figure>
<img id="viewer-img" alt="">
<figcaption id="viewer-caption"></figcaption>
</figure>
<div class="viewer-bar">
<button type="button" id="viewer-prev" aria-label="Previous image">← Previous</button>
<span id="viewer-count" aria-live="polite"></span>
<button type="button" id="viewer-next" aria-label="Next image">Next →</button>
<a id="viewer-open" href="#" target="_blank" rel="noopener">Open the file</a>
<button type="button" id="viewer-close" aria-label="Close (Escape)">Close ✕</button>
</div>
</dialog>
<script src="{up}{SCRIPT}"></script>
</body>
</html>
"""


def _thumb(pic: Picture, page: str, project: str, caption: str = "", big: bool = False) -> str:
    up = _up(page)
    src = f"{up}{quote(project)}/{quote(pic.src)}"  # a folder named with `#`, `?` or a space still links
    cls = "thumb big" if big else "thumb"
    if pic.thumb is None:
        why = "not an image it can read" if pic.condition == "unreadable" else "missing on disk"
        return (
            f'<div class="{cls} gone" role="img" aria-label="{escape(pic.alt)} ({why})">'
            f"<span>{escape(pic.src)}<br>{why}</span></div>"
        )
    note = '<span class="flag">changed on disk</span>' if pic.condition == "changed" else ""
    data_caption = escape(caption or pic.alt)
    return (
        f'<a class="{cls} full" href="{escape(src)}" data-caption="{data_caption}">'
        f'<img src="{up}{THUMBS}/{escape(pic.thumb)}" alt="{escape(pic.alt)}" loading="lazy" decoding="async">'
        f"{note}</a>"
    )


def _params(rows: tuple[tuple[str, str], ...]) -> str:
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
    return f'<dl class="params">{items}</dl>'


def _status(text: str) -> str:
    kind = "ok" if text in ("generated", "trained") else ("bad" if text.startswith("failed") else "wait")
    return f'<span class="status {kind}">{escape(text)}</span>'


def _caption(view: GenerationView) -> str:
    return " · ".join(f"{k}: {v}" for k, v in view.params)


# --- index --------------------------------------------------------------------------------------------


def _index(gallery: Gallery, project: str) -> str:
    page = "index.html"
    n_gen = len(gallery.generations) + sum(len(m.members) for m in gallery.matrices)
    summary = (
        f"{plural(len(gallery.models), 'model')} · {plural(n_gen, 'generation')} · "
        f"{plural(gallery.images, 'image')} · state serial {gallery.serial}"
    )
    groups: dict[str, list[ModelView]] = {}
    for model in gallery.models:
        groups.setdefault(model.matrix or model.name, []).append(model)
    models = (
        "".join(
            _model_card(group[0], page, project)
            if group[0].matrix is None
            else _model_matrix_card(group, page, project)
            for group in groups.values()
        )
        or '<p class="empty">No models yet.</p>'
    )
    cards = [_matrix_card(m, page, project) for m in gallery.matrices]
    cards += [_generation_card(g, page, project) for g in gallery.generations]
    generations = "".join(cards) or '<p class="empty">No generations yet.</p>'
    body = f"""<h1>{escape(gallery.title)}</h1>
<p class="lede">{summary}</p>
<section aria-labelledby="generations-h">
<h2 id="generations-h">Generations</h2>
<ul class="cards">{generations}</ul>
</section>
<section aria-labelledby="models-h">
<h2 id="models-h">Models</h2>
<ul class="cards models">{models}</ul>
</section>"""
    return _page(gallery, page, "Index", body, [])


def _model_card(model: ModelView, page: str, project: str) -> str:
    strip = "".join(_thumb(p, page, project) for p in model.samples)
    more = model.dataset_images - len(model.samples)
    extra = f'<span class="more">+{more}</span>' if more > 0 else ""
    trained = f"<code>{escape(model.model_name)}</code>" if model.model_name else "not trained yet"
    label = f'<p class="axes">{escape(model.label)}</p>' if model.label else ""
    return f"""<li class="card model" id="{escape(model.address)}">
<h3>{escape(model.matrix or model.name)}</h3>{label}
<p>{_status(model.status)} {trained}</p>
<p class="meta">task <code>{escape(model.task_name)}</code> · dataset {escape(model.dataset)} ({plural(model.dataset_images, "image")})</p>
<div class="strip" aria-label="Training images">{strip}{extra}</div>
<details><summary>Settings</summary>{_params(model.settings)}</details>
</li>"""


def _model_matrix_card(members: list[ModelView], page: str, project: str) -> str:
    """A swept LoraModel: its training images once, and one row per member."""
    first = members[0]
    strip = "".join(_thumb(p, page, project) for p in first.samples)
    more = first.dataset_images - len(first.samples)
    extra = f'<span class="more">+{more}</span>' if more > 0 else ""
    rows = "".join(
        f'<tr><th scope="row"><code>{escape(m.label)}</code></th><td>{_status(m.status)}</td>'
        f"<td><code>{escape(m.model_name or '-')}</code></td><td><code>{escape(m.task_name)}</code></td></tr>"
        for m in members
    )
    return f"""<li class="card model wide" id="{escape(first.matrix or first.name)}">
<h3>{escape(first.matrix or first.name)} <span class="tag">matrix</span></h3>
<p class="meta">{plural(len(members), "member")} · dataset {escape(first.dataset)} ({plural(first.dataset_images, "image")})</p>
<div class="strip" aria-label="Training images">{strip}{extra}</div>
<table class="members"><thead><tr><th scope="col">Member</th><th scope="col">Status</th><th scope="col">Trained model</th><th scope="col">Task</th></tr></thead><tbody>{rows}</tbody></table>
</li>"""


def _generation_card(view: GenerationView, page: str, project: str) -> str:
    cover = next((p for p in view.pictures if p.thumb), None)
    image = (
        _thumb(cover, page, project, _caption(view))
        if cover
        else '<div class="thumb gone"><span>no image yet</span></div>'
    )
    prompt = dict(view.params).get("Prompt", "")
    history = f" · {plural(len(view.history), 'earlier version')}" if view.history else ""
    return f"""<li class="card gen">
{image}
<h3><a href="{escape(view.page)}">{escape(view.name)}</a></h3>
<p class="prompt">{escape(prompt)}</p>
<p class="meta">{_status(view.status)} {plural(len(view.pictures), "image")}{history}</p>
</li>"""


def _matrix_card(matrix: MatrixView, page: str, project: str) -> str:
    cover = matrix.cover
    image = _thumb(cover, page, project) if cover else '<div class="thumb gone"><span>no image yet</span></div>'
    shape = escape(" × ".join(f"{label} ({len(values)})" for label, values in matrix.axes))
    prompt = dict(matrix.common).get("Prompt", "")
    done = sum(1 for m in matrix.members if m.pictures)
    return f"""<li class="card gen matrix">
{image}
<h3><a href="{escape(matrix.page)}">{escape(matrix.name)}</a> <span class="tag">matrix</span></h3>
<p class="prompt">{escape(prompt)}</p>
<p class="meta">{shape} · {done} of {plural(len(matrix.members), "member")} generated</p>
</li>"""


# --- a generation -------------------------------------------------------------------------------------


def _generation_page(gallery: Gallery, view: GenerationView, project: str, matrix: MatrixView | None = None) -> str:
    page = view.page
    crumbs = [(matrix.page, matrix.name)] if matrix else []
    caption = _caption(view)
    current = (
        "".join(
            f"<figure>{_thumb(p, page, project, caption, big=True)}<figcaption>{escape(p.src)}</figcaption></figure>"
            for p in view.pictures
        )
        or '<p class="empty">No images yet.</p>'
    )
    title = escape(view.matrix or view.name)
    sub = f'<p class="axes">{escape(view.label)}</p>' if view.label else ""
    history = ""
    if view.history:
        latest = view.history[0]
        history = f"""<section aria-labelledby="history-h">
<h2 id="history-h">Before and after</h2>
<div class="compare">
<div><h3>Now</h3><div class="pics">{current}</div></div>
<div><h3>Before (replaced {escape(latest.when)} UTC)</h3>{_earlier_block(latest, page, project)}</div>
</div>
{"".join(f"<h3>Earlier ({escape(e.when)})</h3>{_earlier_block(e, page, project)}" for e in view.history[1:])}
</section>"""
    body = f"""<h1>{title}</h1>{sub}
<p class="lede">{_status(view.status)} {plural(len(view.pictures), "image")} in <code>{escape(view.output)}</code></p>
<div class="detail">
<section aria-labelledby="images-h"><h2 id="images-h">Images</h2><div class="pics">{current}</div></section>
<section aria-labelledby="params-h"><h2 id="params-h">Parameters</h2>{_params(view.params)}</section>
</div>
{history}"""
    return _page(gallery, page, view.name, body, [*crumbs, (page, view.label or view.name)])


def _earlier_block(earlier: Earlier, page: str, project: str) -> str:
    caption = " · ".join(f"{k}: {v}" for k, v in earlier.params)
    pics = "".join(
        f"<figure>{_thumb(p, page, project, caption, big=True)}<figcaption>{escape(p.src)}</figcaption></figure>"
        for p in earlier.pictures
    )
    if earlier.changes:
        rows = "".join(
            f'<tr><th scope="row">{escape(k)}</th><td>{escape(then)}</td><td>{escape(now)}</td></tr>'
            for k, then, now in earlier.changes
        )
        diff = f'<table class="diff"><thead><tr><th scope="col">Changed</th><th scope="col">Then</th><th scope="col">Now</th></tr></thead><tbody>{rows}</tbody></table>'
    else:
        diff = '<p class="meta">Same parameters (generated again).</p>'
    return f'<div class="pics">{pics}</div>{diff}'


# --- a matrix -----------------------------------------------------------------------------------------


def _matrix_page(gallery: Gallery, matrix: MatrixView, project: str) -> str:
    page = matrix.page
    shape = " × ".join(f"{label} ({len(values)})" for label, values in matrix.axes)
    grids = "".join(_grid(grid, page, project, matrix.name) for grid in matrix.grids)
    done = sum(1 for m in matrix.members if m.pictures)
    body = f"""<h1>{escape(matrix.name)} <span class="tag">matrix</span></h1>
<p class="lede">{escape(shape)} · {done} of {plural(len(matrix.members), "member")} generated</p>
<details class="common" open><summary>Parameters every member shares</summary>{_params(matrix.common)}</details>
{grids}"""
    return _page(gallery, page, matrix.name, body, [(page, matrix.name)])


def _grid(grid: Grid, page: str, project: str, name: str) -> str:
    head = f"<h2>{escape(grid.title)}</h2>" if grid.title else ""
    corner = escape(f"{grid.row_axis} ↓  {grid.col_axis} →") if grid.row_axis else escape(f"{grid.col_axis} →")
    cols = "".join(f'<th scope="col">{escape(grid.col_axis)}={escape(c)}</th>' for c in grid.cols)
    rows = []
    for row, cells in zip(grid.rows, grid.cells, strict=True):
        label = f'<th scope="row">{escape(grid.row_axis)}={escape(row)}</th>' if grid.row_axis else "<th></th>"
        rows.append("<tr>" + label + "".join(_cell(cell, page, project) for cell in cells) + "</tr>")
    caption = f"{name}: {grid.title}" if grid.title else name
    return f"""<section class="grid-wrap">{head}
<table class="grid" data-rows="{len(grid.rows)}" data-cols="{len(grid.cols)}">
<caption class="sr">{escape(caption)}: rows by {escape(grid.row_axis or "-")}, columns by {escape(grid.col_axis)}</caption>
<thead><tr><th class="corner" scope="col">{corner}</th>{cols}</tr></thead>
<tbody>{"".join(rows)}</tbody>
</table></section>"""


def _cell(view: GenerationView | None, page: str, project: str) -> str:
    if view is None:
        return '<td class="cell none"><span>not in the state</span></td>'
    caption = f"{view.label} · " + _caption(view)
    pics = "".join(_thumb(p, page, project, caption) for p in view.pictures)
    if not pics:
        pics = f'<div class="thumb gone"><span>{escape(view.status)}</span></div>'
    history = f" · {len(view.history)} earlier" if view.history else ""
    up = _up(page)
    return (
        f'<td class="cell"><div class="cellpics n{min(len(view.pictures), 4)}">{pics}</div>'
        f'<a class="details" href="{up}{escape(view.page)}">details{history}</a></td>'
    )


CSS = """:root{--bg:#111318;--panel:#1b1e26;--line:#2c313d;--text:#e8eaf0;--muted:#9aa3b5;--accent:#7fb2ff;
--ok:#5fd38d;--bad:#ff7a7a;--wait:#f2c46b;color-scheme:dark}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
a{color:var(--accent)}
a:focus-visible,button:focus-visible,summary:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:8px;top:8px;background:var(--panel);padding:6px 10px;z-index:9}
.top{border-bottom:1px solid var(--line);padding:10px 24px;background:var(--panel)}
.crumbs{list-style:none;display:flex;flex-wrap:wrap;gap:6px;margin:0;padding:0}
.crumbs li+li:before{content:"/";color:var(--muted);margin-right:6px}
main{padding:20px 24px 48px;max-width:1600px;margin:0 auto}
h1{margin:.2em 0 .1em;font-size:26px}h2{font-size:19px;margin:1.4em 0 .6em}h3{font-size:16px;margin:.4em 0}
.lede,.meta,.axes{color:var(--muted)}.axes{margin:0;font-family:ui-monospace,monospace;font-size:13px}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px;color:#cfd6e6}
.cards{list-style:none;padding:0;margin:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:16px}
.cards.models{grid-template-columns:repeat(auto-fill,minmax(380px,1fr))}
.card{background:var(--panel);border:1px solid var(--line);border-radius:10px;padding:12px;min-width:0}
.card h3 a{text-decoration:none;color:var(--text)}.card h3 a:hover{text-decoration:underline}
.card .prompt{margin:.2em 0;display:-webkit-box;-webkit-line-clamp:2;-webkit-box-orient:vertical;overflow:hidden}
.card.gen>.thumb{display:block;aspect-ratio:1/1;width:100%}
.thumb{display:inline-block;position:relative;border-radius:6px;overflow:hidden;background:#0b0c10;border:1px solid var(--line)}
.thumb img{display:block;width:100%;height:100%;object-fit:cover}
.thumb.gone{display:flex;align-items:center;justify-content:center;color:var(--muted);font-size:12px;min-height:80px;aspect-ratio:1/1}
.thumb .flag{position:absolute;left:4px;bottom:4px;background:#000a;color:var(--wait);font-size:11px;padding:1px 5px;border-radius:4px}
.strip{display:flex;gap:6px;flex-wrap:wrap;align-items:center}.strip .thumb{width:56px;height:56px}
.more{color:var(--muted);font-size:13px}
.card.wide{grid-column:span 2}@media (max-width:900px){.card.wide{grid-column:auto}}
table.members{border-collapse:collapse;margin-top:10px;font-size:13px;width:100%}
table.members th,table.members td{border-top:1px solid var(--line);padding:4px 8px 4px 0;text-align:left;vertical-align:top}
table.members thead th{color:var(--muted);font-weight:600}table.members td code{white-space:nowrap}
.status{font-size:12px;padding:1px 8px;border-radius:10px;border:1px solid currentColor;margin-right:6px}
.status.ok{color:var(--ok)}.status.bad{color:var(--bad)}.status.wait{color:var(--wait)}
.tag{font-size:11px;color:var(--accent);border:1px solid var(--accent);border-radius:10px;padding:0 7px;vertical-align:middle}
.params{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;margin:0}
.params dt{color:var(--muted)}.params dd{margin:0;word-break:break-word}
.detail{display:grid;grid-template-columns:minmax(0,2fr) minmax(260px,1fr);gap:24px}
@media (max-width:900px){.detail{grid-template-columns:1fr}}
.pics{display:flex;flex-wrap:wrap;gap:12px}.pics figure{margin:0;max-width:360px}
.pics figcaption{color:var(--muted);font-size:12px;word-break:break-all}
.thumb.big{width:min(360px,100%)}.thumb.big img{height:auto}
.compare{display:grid;grid-template-columns:1fr 1fr;gap:24px;background:var(--panel);border:1px solid var(--line);border-radius:10px;padding:12px 16px}
@media (max-width:900px){.compare{grid-template-columns:1fr}}
.diff{border-collapse:collapse;margin-top:10px;font-size:13px}.diff th,.diff td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
.grid-wrap{overflow-x:auto}
table.grid{border-collapse:separate;border-spacing:8px}
table.grid th{color:var(--muted);font-weight:600;font-size:13px;font-family:ui-monospace,monospace;white-space:nowrap}
table.grid thead th{text-align:center}table.grid tbody th{text-align:right;padding-right:6px}
table.grid .corner{text-align:left;font-weight:400;font-size:12px}
.cell{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:6px;vertical-align:top;width:240px}
.cell.none{color:var(--muted);text-align:center;font-size:12px}
.cellpics{display:grid;gap:4px}.cellpics.n2,.cellpics.n3,.cellpics.n4{grid-template-columns:1fr 1fr}
.cellpics .thumb{width:100%;aspect-ratio:1/1}
.cell .details{display:block;font-size:12px;margin-top:4px}
.common{margin:8px 0 4px;max-width:900px}.common .params{margin-top:6px;font-size:14px}summary{cursor:pointer;color:var(--muted)}
.empty{color:var(--muted)}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
dialog#viewer{background:#000e;color:var(--text);border:0;padding:12px;max-width:100vw;max-height:100vh;width:100vw;height:100vh}
dialog#viewer::backdrop{background:#000c}
dialog#viewer figure{margin:0;height:calc(100% - 52px);display:flex;flex-direction:column;align-items:center;justify-content:center}
dialog#viewer img{max-width:100%;max-height:calc(100% - 60px);object-fit:contain}
dialog#viewer figcaption{color:var(--muted);font-size:13px;max-width:1100px;text-align:center;margin-top:8px}
.viewer-bar{display:flex;gap:10px;justify-content:center;align-items:center}
.viewer-bar button,.viewer-bar a{background:var(--panel);color:var(--text);border:1px solid var(--line);border-radius:6px;padding:6px 12px;font:inherit;text-decoration:none;cursor:pointer}
"""

JS = """(function () {
  "use strict";
  var dialog = document.getElementById("viewer");
  var links = Array.prototype.slice.call(document.querySelectorAll("a.full"));
  if (!dialog || !dialog.showModal || !links.length) { return; }
  var img = document.getElementById("viewer-img");
  var caption = document.getElementById("viewer-caption");
  var count = document.getElementById("viewer-count");
  var open = document.getElementById("viewer-open");
  var current = 0, opener = null;
  function show(i) {
    current = (i + links.length) % links.length;
    var link = links[current], thumb = link.querySelector("img");
    img.src = link.getAttribute("href");
    img.alt = thumb ? thumb.alt : "";
    caption.textContent = link.getAttribute("data-caption") || "";
    count.textContent = (current + 1) + " / " + links.length;
    open.href = link.getAttribute("href");
  }
  links.forEach(function (link, i) {
    link.addEventListener("click", function (event) {
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) { return; }
      event.preventDefault();
      opener = link;
      show(i);
      dialog.showModal();
    });
  });
  document.getElementById("viewer-prev").addEventListener("click", function () { show(current - 1); });
  document.getElementById("viewer-next").addEventListener("click", function () { show(current + 1); });
  document.getElementById("viewer-close").addEventListener("click", function () { dialog.close(); });
  dialog.addEventListener("keydown", function (event) {
    if (event.key === "ArrowLeft") { event.preventDefault(); show(current - 1); }
    if (event.key === "ArrowRight") { event.preventDefault(); show(current + 1); }
  });
  dialog.addEventListener("click", function (event) { if (event.target === dialog) { dialog.close(); } });
  dialog.addEventListener("close", function () { img.removeAttribute("src"); if (opener) { opener.focus(); } });
})();
"""
