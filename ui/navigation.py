"""The app's pages, in one list: the entry point registers them with st.navigation and Home tours them."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PageSpec:
    file: str  # relative to the entry point
    title: str
    url_path: str  # kept stable: links and browser tests use these addresses
    icon: str

    @property
    def blurb(self) -> str:
        """The first line of the page's docstring after its "Title:" prefix, for the tour."""
        return _blurb(ROOT / self.file)


HOME = PageSpec("app_pages/0_Home.py", "Home", "", ":material/home:")
PAGES = (
    HOME,
    PageSpec("app_pages/1_Latent_Map.py", "Latent Map", "Latent_Map", ":material/scatter_plot:"),
    PageSpec("app_pages/2_Interpolate.py", "Interpolate", "Interpolate", ":material/linear_scale:"),
    PageSpec("app_pages/3_Reconstruct.py", "Reconstruct", "Reconstruct", ":material/upload:"),
    PageSpec("app_pages/4_Train.py", "Train", "Train", ":material/model_training:"),
    PageSpec("app_pages/5_Compare.py", "Compare", "Compare", ":material/compare:"),
)


def page_file(title: str) -> str:
    """The file of the page called `title`, as st.switch_page wants it."""
    return next(p.file for p in PAGES if p.title == title)


@lru_cache(maxsize=None)
def _blurb(path: Path) -> str:
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    except (OSError, SyntaxError, UnicodeDecodeError):
        return ""
    line = doc.splitlines()[0] if doc else ""
    line = line.split(":", 1)[1].strip() if ":" in line else line  # "Latent Map: the test set…" -> "the test set…"
    return line[:1].upper() + line[1:]
