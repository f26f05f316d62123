"""Code and printed output wrap at the code box's edge instead of running past it, cut off.

Notebook code is formatted to the box's width (72 columns, ``notebooks/ruff.toml``); what a
formatter cannot break (a long string, a printed table row) wraps here."""

from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"


def _add_static(app):
    app.config.html_static_path.append(str(STATIC))


def setup(app):
    app.connect("builder-inited", _add_static)
    app.add_css_file("handlib.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
