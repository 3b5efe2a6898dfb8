"""The course as a website (``make book``): the README as the front page, the executed notebook
series, docs/ and an API reference generated from the package's docstrings, built offline with
MkDocs (Material theme, mkdocs-jupyter for the notebooks, mkdocstrings for the API).

    python tools/book.py [--run auto|RUN] [--out build/book] [--check]

- ``--run``: the run whose executed notebooks (``RUN/notebooks/*.ipynb``) the site shows.  ``auto``
  (``make book``'s default): ``runs/quick`` where it holds the whole series, else ``runs/test-quick``
  (what ``make test`` leaves), else an error naming the command that makes one.  ``make book
  RUN=runs/default`` shows the full run.
- The sources are staged in ``OUT/src`` with the repository's own layout (``README.md``, ``docs/``,
  ``figures/``, ``notebooks/``, and ``api/``: one page per module), so every relative link that
  works on the code host works on the site; MkDocs builds ``OUT/site`` with ``--strict`` and its
  link and anchor validation as errors.
- ``--check``: then every page's internal links and images are resolved against the built site,
  and three pages (the front page, a notebook with its figures, the API of ``mexpr.timeline``) are
  opened in headless Chromium (Debian's ``chromium``), whose rendered DOM must hold what the page
  is for.  Without a browser that part is skipped, and said so.
"""

from __future__ import annotations

import argparse
import html.parser
import json
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mexpr import series  # noqa: E402  (the series' order and names)

#: the docs in reading order (any other page of docs/ follows, by name)
DOCS_ORDER = ("usage", "results", "video", "real-data", "corpora", "contradictions", "DESIGN", "scale", "benchmarks")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


class BookError(RuntimeError):
    pass


def find_run(run: str) -> Path:
    """The run to show (module text); every notebook of the series must be there, executed."""
    candidates = [ROOT / "runs" / "quick", ROOT / "runs" / "test-quick"] if run == "auto" else [Path(run)]
    for c in candidates:
        have = {p.name for p in (c / "notebooks").glob("*.ipynb")}
        missing = [n for n in series.SERIES if n not in have]
        if not missing:
            return c
        if run != "auto":
            raise BookError(
                f"{c}: no executed {', '.join(missing)} in {c / 'notebooks'}; run the series first "
                f"(`make reproduce` for runs/default, `make reproduce PROFILE=quick` for runs/quick)"
            )
    raise BookError(
        "no executed notebook series in runs/quick or runs/test-quick: run `make test` (it leaves runs/test-quick) "
        "or `make reproduce PROFILE=quick`, or name a run: `make book RUN=runs/default`"
    )


def modules() -> list[str]:
    """The package's public modules (``mexpr.x``, ``mexpr.synth.x``): the package, then its modules by
    depth and name."""
    out = []
    for p in sorted((ROOT / "mexpr").rglob("*.py")):
        rel = p.relative_to(ROOT).with_suffix("")
        if any(part.startswith("_") and part != "__init__" for part in rel.parts):
            continue
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        out.append(name)
    return sorted(set(out), key=lambda m: (m.count("."), m))


def _title(md: Path) -> str:
    for line in md.read_text().splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return md.stem


def stage(run: Path, src: Path) -> dict:
    """Copy the site's sources into ``src`` (module text); returns the nav."""
    if src.exists():
        shutil.rmtree(src)
    (src / "notebooks").mkdir(parents=True)
    shutil.copy2(ROOT / "README.md", src / "README.md")
    shutil.copytree(ROOT / "figures", src / "figures")
    shutil.copytree(ROOT / "docs", src / "docs", ignore=shutil.ignore_patterns("results"))
    for name in series.SERIES:
        shutil.copy2(run / "notebooks" / name, src / "notebooks" / name)
    (src / "api").mkdir()
    mods = modules()
    api = []
    for m in mods:
        page = src / "api" / f"{m}.md"
        page.write_text(f"# `{m}`\n\n::: {m}\n")
        api.append({m: f"api/{m}.md"})
    (src / "api" / "index.md").write_text(
        "# API reference\n\nGenerated from the docstrings of the installed package, one page per module "
        "(the module table in [the usage guide](../docs/usage.md#the-package) says what each holds).\n\n"
        + "\n".join(f"- [`{m}`]({m}.md)" for m in mods)
        + "\n"
    )
    order = {name: k for k, name in enumerate(DOCS_ORDER)}
    docs = sorted((src / "docs").glob("*.md"), key=lambda p: (order.get(p.stem, len(order)), p.stem))
    return {
        "nav": [
            {"Home": "README.md"},
            {"The series": [{f"{n[:2]} {_title_nb(src / 'notebooks' / n)}": f"notebooks/{n}"} for n in series.SERIES]},
            {"Docs": [{_title(p): f"docs/{p.name}"} for p in docs]},
            {"API": [{"Overview": "api/index.md"}, *api]},
        ]
    }


def _title_nb(path: Path) -> str:
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            first = "".join(cell["source"]).strip().splitlines()[0]
            return first.lstrip("# ").split("·", 1)[-1].strip()
    return path.stem


def config(src: Path, site: Path, nav: dict) -> Path:
    cfg = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    cfg |= {"docs_dir": str(src), "site_dir": str(site)} | nav
    for plugin in cfg["plugins"]:
        if isinstance(plugin, dict) and "mkdocstrings" in plugin:
            plugin["mkdocstrings"]["handlers"]["python"]["paths"] = [str(ROOT)]
    out = src.parent / "mkdocs.yml"
    out.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return out


def build(run: Path, out: Path) -> Path:
    src, site = out / "src", out / "site"
    nav = stage(run, src)
    cfg = config(src, site, nav)
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "-f", str(cfg)], capture_output=True, text=True)
    if res.returncode:
        raise BookError("mkdocs build failed:\n" + res.stderr[-6000:])
    print(f"built {site} from {run} in {time.perf_counter() - t0:.1f} s: {len(list(site.rglob('*.html')))} pages")
    return site


# -- checks --------------------------------------------------------------------------------------------


class _Refs(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("href", "src"):
            if a.get(key) and tag in ("a", "img", "link", "script"):
                self.refs.append((tag, a[key]))


def broken_links(site: Path) -> list[str]:
    """Every internal ``href``/``src`` of every page that does not resolve to a file of the site."""
    bad = []
    for page in site.rglob("*.html"):
        if page.name == "404.html":  # served from any depth: its links are absolute, for a web server
            continue
        p = _Refs()
        p.feed(page.read_text(errors="replace"))
        for tag, ref in p.refs:
            u = urllib.parse.urlparse(ref)
            if u.scheme or ref.startswith(("#", "//", "data:", "mailto:", "javascript:")):
                continue
            path = urllib.parse.unquote(u.path)
            target = (site / path.lstrip("/") if path.startswith("/") else page.parent / path).resolve()
            if u.path.endswith("/") or target.is_dir():
                target = target / "index.html"
            if not target.exists():
                bad.append(f"{page.relative_to(site)}: <{tag}> {ref}")
    return bad


def browser() -> str | None:
    return next((b for b in (shutil.which(n) for n in BROWSERS) if b), None)


def render(page: Path, exe: str) -> str:
    """The DOM of ``page`` after headless Chromium has loaded and run it."""
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files", "--virtual-time-budget=5000",
           "--dump-dom", page.resolve().as_uri()]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if res.returncode or "<body" not in res.stdout:
        raise BookError(f"{exe} could not render {page}: {res.stderr[-2000:]}")
    return res.stdout


def rendered(site: Path, exe: str) -> list[str]:
    """Three pages opened in headless Chromium: what each must show once rendered."""
    problems = []
    nb = series.SERIES[4]  # 04_training: curves and crops, the series' figures
    pages = {
        "index.html": ["DTSCNN", "make reproduce", "<img"],
        f"notebooks/{Path(nb).stem}/index.html": ["What you will learn", "data:image/png;base64", "jp-OutputArea"],
        "api/mexpr.timeline/index.html": ["analyze", "load_recogniser", "doc-function"],
    }
    for rel, wants in pages.items():
        dom = render(site / rel, exe)
        problems += [f"{rel}: the rendered page lacks {w!r}" for w in wants if w not in dom]
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="auto")
    ap.add_argument("--out", default=str(ROOT / "build" / "book"))
    ap.add_argument("--check", action="store_true", help="check the built site's links and render three pages in headless Chromium")
    args = ap.parse_args(argv)
    try:
        site = build(find_run(args.run), Path(args.out))
        if args.check:
            problems = broken_links(site)
            exe = browser()
            if exe is None:
                print("book: browser check skipped: no Chromium on this machine (Debian: apt-get install chromium)", file=sys.stderr)
            else:
                problems += rendered(site, exe)
            for p in problems:
                print("book:", p, file=sys.stderr)
            if problems:
                return 1
            print(f"checked {site}: internal links resolve" + ("; front page, a notebook and an API page render in Chromium" if exe else ""))
        print(f"open {site / 'index.html'}")
    except BookError as exc:
        print(f"book: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
