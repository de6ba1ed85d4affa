"""Write docs/index.md, the site's home page, from README.md: the same text, with links rewritten
for the site (``docs/X`` -> ``X``; files outside docs/ and results/ -> the repository on GitHub).

    python docs/make_index.py        # tests/test_docs.py checks that docs/index.md is current
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = "https://github.com/adadim/adadim/blob/main/"
LINK = re.compile(r"\]\((?!https?://|#)([^)#\s]+)(#[^)\s]*)?\)")


def _site_link(match: re.Match[str]) -> str:
    target, anchor = match[1], match[2] or ""
    if target.startswith("docs/"):
        target = target.removeprefix("docs/")
    elif not target.startswith("results/"):  # docs/results links to results/
        target = SOURCE + target
    return f"]({target}{anchor})"


def index_text(readme: str) -> str:
    readme = readme.replace(
        "The reference lives in [`docs/`](docs/index.md), built", "The reference lives in this site, built"
    )
    return LINK.sub(_site_link, readme)


def main() -> None:
    (REPO / "docs" / "index.md").write_text(index_text((REPO / "README.md").read_text()))


if __name__ == "__main__":
    main()
