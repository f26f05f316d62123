"""The paper companion: the runner (registry, cache, run records) and the built book, read in Chromium.

The book test builds the whole book at the ``smoke`` profile in a copy of the repository
(so the committed figures stay as they are) and opens every page in headless Chromium.
"""

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest
from browser import CHROMIUM, open_in_chromium

from handlib.experiments import book

REPO = Path(__file__).resolve().parents[1]


def tiny_registry(root: Path, value: int) -> book.Registry:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("profile = 'quick'\nvalue = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print('value', value * 2)"),
    ]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (root / "notebooks").mkdir(exist_ok=True)
    if not (root / "notebooks" / "tiny.ipynb").is_file():  # rewriting would draw new cell ids: a new key
        nbformat.write(notebook, root / "notebooks" / "tiny.ipynb")
    (root / "_config.yml").write_text(
        "default_profile: quick\nprofiles: [smoke, quick]\nexperiments:\n"
        f"  - name: tiny\n    notebook: notebooks/tiny.ipynb\n    parameters:\n      smoke: {{value: {value}}}\n"
        "  - name: reader\n    notebook: notebooks/tiny.ipynb\n    after: [tiny]\n"
    )
    return book.load_registry(root / "_config.yml")


def test_runner_caches_records_and_reruns_on_change(tmp_path, capsys):
    book.run_experiments(tiny_registry(tmp_path, 3), "smoke", tmp_path)
    executed = nbformat.read(tmp_path / "book" / "tiny.ipynb", as_version=4)
    assert "value 6" in executed.cells[-2].outputs[0]["text"]  # parameter passed, run record appended after
    record = executed.metadata["handlib_run"]
    assert record["profile"] == "smoke" and record["mitsuba_variant"] and "commit" in record["handlib"]
    assert "Run record" in executed.cells[-1].source and record["cpu"] in executed.cells[-1].source
    capsys.readouterr()
    book.run_experiments(tiny_registry(tmp_path, 3), "smoke", tmp_path)
    assert capsys.readouterr().out.count("not re-run") == 2
    book.run_experiments(tiny_registry(tmp_path, 4), "smoke", tmp_path)  # new parameter: both re-run
    out = capsys.readouterr().out
    assert (
        "not re-run" not in out
        and "value 8" in nbformat.read(tmp_path / "book" / "tiny.ipynb", 4).cells[-2].outputs[0]["text"]
    )
    book.run_experiments(tiny_registry(tmp_path, 4), "quick", tmp_path)  # another profile: re-run
    assert "not re-run" not in capsys.readouterr().out


def test_study_runs_beside_the_book_with_its_own_table_and_record(tmp_path, capsys):
    registry = tiny_registry(tmp_path, 3)
    with pytest.raises(ValueError, match="cannot run as a study"):  # no overrides / table_name parameters
        book.run_study(registry, "tiny", "smoke", "tiny_more", {}, tmp_path)
    study = nbformat.read(tmp_path / "notebooks" / "tiny.ipynb", 4)
    study.cells[0].source += "\noverrides = {}\ntable_name = 'tiny'"
    study.cells[1].source = (
        "import json, pathlib\n"
        "out = pathlib.Path('results', profile, table_name + '.csv')\n"
        "out.parent.mkdir(parents=True, exist_ok=True)\n"
        "out.write_text('value\\n' + str({'value': value, **overrides}['value']))"
    )
    nbformat.write(study, tmp_path / "notebooks" / "tiny.ipynb")
    book.run_study(registry, "tiny", "smoke", "tiny_more", {"value": 11}, tmp_path)
    assert (tmp_path / "results" / "smoke" / "tiny_more.csv").read_text() == "value\n11"
    record = json.loads((tmp_path / "results" / "smoke" / "runs" / "tiny_more.json").read_text())
    assert json.loads(record["parameters"]) == {
        "profile": "smoke",
        "value": 3,
        "overrides": {"value": 11},
        "table_name": "tiny_more",
    }
    assert record["wall_time"].endswith(" s") and "commit" in record["handlib"] and "key" not in record
    assert not (tmp_path / "book" / "tiny.ipynb").exists()  # the book's own copy is not touched
    for name, table, match in (("nope", "x", "Unknown experiment"), ("tiny", "tiny", "name of its own")):
        with pytest.raises(ValueError, match=match):
            book.run_study(registry, name, "smoke", table, {}, tmp_path)
    with pytest.raises(ValueError, match="Unknown profile"):
        book.run_study(registry, "tiny", "paper", "t2", {}, tmp_path)


def test_registry_errors_name_the_entry(tmp_path):
    (tmp_path / "_config.yml").write_text(
        "default_profile: quick\nprofiles: [quick]\nexperiments:\n  - name: a\n    notebook: a.ipynb\n    after: [b]\n"
    )
    with pytest.raises(ValueError, match="'a' comes after"):
        book.load_registry(tmp_path / "_config.yml")
    tiny_registry(tmp_path, 1)
    bad = tmp_path / "notebooks" / "tiny.ipynb"
    notebook = nbformat.read(bad, 4)
    notebook.cells.append(nbformat.v4.new_code_cell("raise RuntimeError('broken experiment')"))
    nbformat.write(notebook, bad)
    import papermill

    with pytest.raises(papermill.PapermillExecutionError, match="broken experiment"):
        book.run_experiments(book.load_registry(tmp_path / "_config.yml"), "smoke", tmp_path)


CHECK_SCRIPT = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || (e.target && (e.target.src || e.target.href)) || e)), true);
window.addEventListener('unhandledrejection', e => window.__errors.push('unhandled rejection: ' + e.reason));
const __consoleError = console.error;
console.error = function (...args) { window.__errors.push('console.error: ' + args.join(' ')); __consoleError.apply(console, args); };
window.addEventListener('load', () => setTimeout(() => {
  const plots = Array.from(document.querySelectorAll('.plotly-graph-div')).map(p => ({
    drawn: p.classList.contains('js-plotly-plot') && p.querySelectorAll('.main-svg').length > 0,
    traces: (p.data || []).length,
    points: (p.calcdata || []).reduce((n, trace) => n + trace.length, 0)}));
  const images = Array.from(document.images).map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0}));
  const report = document.createElement('pre');
  report.id = 'handlib-check';
  report.textContent = JSON.stringify({errors: window.__errors, plots, images,
                                       math: document.querySelectorAll('mjx-container').length});
  document.body.appendChild(report);
}, 4000));
</script>"""


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])


def parse(path: Path) -> Links:
    links = Links()
    links.feed(path.read_text(encoding="utf-8"))
    return links


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    shutil.copy(REPO / "_config.yml", root)
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    (root / "book").mkdir()
    for path in (REPO / "book").iterdir():
        if path.is_file() and path.suffix in {".yml", ".md"}:
            shutil.copy(path, root / "book")
    shutil.copytree(REPO / "book" / "_ext", root / "book" / "_ext")
    (root / "figures").mkdir()
    for path in (REPO / "figures").glob("*.png"):  # the committed figures, as a clone has them
        shutil.copy(path, root / "figures")
    if (REPO / book.MATHJAX_TARBALL).is_file():
        (root / book.MATHJAX_TARBALL).parent.mkdir()
        shutil.copy(REPO / book.MATHJAX_TARBALL, root / book.MATHJAX_TARBALL)
    book.main(["--profile", "smoke", "--root", str(root)])
    return root / "book" / "_build" / "html"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (make test installs Debian's chromium)")
def test_book_pages_work_in_a_browser(built_book):
    toc = [
        "intro",
        "getting_started",
        "open_hand",
        "renderer",
        "synthetic",
        "smvr",
        "smvr_noise",
        "smvr_generators",
        "smvr_cameras",
        "smvr_real",
        "smvr_claims",
        "dmvr",
        "dmvr_cameras",
        "dmvr_ablation",
        "dmvr_real",
        "dmvr_claims",
        "explore",
        "experiments",
        "claims",
        "differences",
        "api",
    ]
    pages = {name: built_book / f"{name}.html" for name in toc}
    assert all(page.is_file() for page in pages.values()), [n for n, p in pages.items() if not p.is_file()]
    plots = 0
    for name, page in pages.items():
        report = open_in_chromium(page, CHECK_SCRIPT)
        assert report["errors"] == [], (name, report["errors"])
        assert all(image["ok"] for image in report["images"]), (name, [i for i in report["images"] if not i["ok"]])
        for plot in report["plots"]:
            assert plot["drawn"] and plot["traces"] > 0 and plot["points"] > 0, (name, plot)
        plots += len(report["plots"])
        if name in ("smvr", "dmvr"):
            assert report["math"] > 5, f"{name}: equations were not typeset (MathJax missing?)"
    assert plots >= 8  # both methods' histories, their experiment figures, the exploration's 3D view
    assert not [p.name for p in built_book.glob("*.html") if "cdn.plot.ly" in p.read_text()]  # offline: no CDN
    # ... nor any other script from the network (widget state on a page would load the widgets' from one)
    assert not [p.name for p in built_book.glob("*.html") if re.search(r'<script[^>]*src="https?://', p.read_text())]
    # Internal links resolve: the file exists, and so does the anchor.
    broken = []
    for page in built_book.glob("*.html"):
        for href in parse(page).hrefs:
            url = urlparse(href)
            if url.scheme or href.startswith("mailto:") or not (url.path or url.fragment):
                continue
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            if not target.exists():
                broken.append((page.name, href))
            elif url.fragment and target.suffix == ".html" and url.fragment not in parse(target).ids:
                broken.append((page.name, href))
    assert broken == []


class Text(HTMLParser):
    """The page's text as a reader sees it in the source (highlighting spans joined)."""

    def __init__(self):
        super().__init__()
        self.parts = []

    def handle_data(self, data):
        self.parts.append(data)


@pytest.mark.slow
def test_pages_show_no_setup_or_parameter_cells_and_wrap_code(built_book):
    shown = []
    for page in sorted(built_book.glob("*.html")):
        html = page.read_text(encoding="utf-8")
        if page.name == "index.html":  # a redirect to the first page, no content
            continue
        text = Text()
        text.feed(html)
        body = "".join(text.parts)
        if 'profile = "' in body or "# Parameters" in body:  # the notebook's own or papermill's cell
            shown.append(page.name)
        ids = parse(page).ids
        assert "setup" not in ids and "parameters" not in ids, page.name  # their headings are gone too
        assert "_static/handlib.css" in html, page.name  # code and outputs wrap at the box's edge
    assert shown == []
    # The smoke run's figures went to figures/smoke/, not over the committed quick-profile ones.
    figures = built_book.parents[2] / "figures"
    assert len(list((figures / "smoke").glob("*.png"))) >= 10
    committed = sorted((REPO / "figures").glob("*.png"))
    assert committed and all((figures / p.name).read_bytes() == p.read_bytes() for p in committed)
