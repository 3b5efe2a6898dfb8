"""``make book``: the course as a website (tools/book.py), its links, and the pages in a browser."""

from __future__ import annotations

import base64
import importlib.util
import io
import shutil
from pathlib import Path

import nbformat
import pytest

from mexpr import series

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("book", ROOT / "tools" / "book.py")
book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(book)


def _png() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1, 2], [0, 1, 0])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built from a run whose notebooks are the committed ones, notebook 04 with a figure output."""
    run = tmp_path_factory.mktemp("run")
    (run / "notebooks").mkdir()
    for name in series.SERIES:
        shutil.copy2(series.notebook_dir() / name, run / "notebooks" / name)
    nb04 = run / "notebooks" / series.SERIES[4]
    nb = nbformat.read(nb04, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", []))
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": _png(), "text/plain": "<Figure>"})]
    nbformat.write(nb, nb04)
    return book.build(run, tmp_path_factory.mktemp("book"))


def test_book_has_every_page_and_its_links_resolve(site):
    # built with --strict: MkDocs' own link and anchor validation of the README and docs/ passed
    assert "DTSCNN" in (site / "index.html").read_text()
    for name in series.SERIES:
        assert (site / "notebooks" / Path(name).stem / "index.html").is_file(), name
    for doc in (ROOT / "docs").glob("*.md"):
        assert (site / "docs" / doc.stem / "index.html").is_file(), doc.name
    api = {p.parent.name for p in (site / "api").glob("*/index.html")}
    assert {"mexpr", "mexpr.timeline", "mexpr.spot", "mexpr.models", "mexpr.synth.render"} <= api
    assert book.modules() == sorted(set(book.modules()), key=lambda m: (m.count("."), m)) and len(api) == len(book.modules())
    page = (site / "api" / "mexpr.timeline" / "index.html").read_text()
    assert "load_recogniser" in page and "spot, then recognise" in page  # the docstrings, rendered
    assert book.broken_links(site) == []


def test_book_pages_render_in_chromium(site):
    exe = book.browser()
    if exe is None:
        pytest.skip("no Chromium on this machine: install Debian's package (apt-get install chromium) for the browser test")
    assert book.rendered(site, exe) == []


def test_broken_links_are_named(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "ok.html").write_text("<html><body>ok</body></html>")
    (tmp_path / "sub" / "index.html").write_text(
        '<html><body><a href="../ok.html">fine</a> <a href="../gone/">gone</a> <img src="fig.png">'
        ' <a href="https://example.org/x">out</a> <a href="#top">here</a></body></html>'
    )
    assert sorted(book.broken_links(tmp_path)) == ["sub/index.html: <a> ../gone/", "sub/index.html: <img> fig.png"]


def test_a_run_without_the_series_is_refused_with_the_command(tmp_path):
    (tmp_path / "notebooks").mkdir()
    shutil.copy2(series.notebook_dir() / series.SERIES[0], tmp_path / "notebooks")
    with pytest.raises(book.BookError, match=r"no executed 01_preprocessing\.ipynb.*make reproduce"):
        book.find_run(str(tmp_path))
