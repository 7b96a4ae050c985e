"""The project's public address, and the "Open in Colab" links made from it (pure Python).

notebooks/build_notebooks.py writes from these constants every notebook's badge, its install
cell's REPO_URL and README's notebook table: change them here, then run the builder.
"""

from __future__ import annotations

# THE ONE PLACE for the project's public repository. It is not public yet: OWNER is a
# placeholder. While it is, the badges lead nowhere and the install cell does not try the URL
# (it installs from a wheel or a clone on Drive, or says which file to upload where).
REPO_URL = "https://github.com/OWNER/cargan_tf"
BRANCH = "main"                  # the branch the badges open
NOTEBOOKS_DIR = "notebooks"      # where the .ipynb files are, relative to the repository root
BADGE_SVG = "https://colab.research.google.com/assets/colab-badge.svg"
PLACEHOLDER_OWNER = "OWNER"


def is_public(repo_url: str | None = None) -> bool:
    """False while REPO_URL (or repo_url) still holds the placeholder owner."""
    return f"/{PLACEHOLDER_OWNER}/" not in (repo_url or REPO_URL)


def install_url(repo_url: str | None = None) -> str:
    """What the install cell may pip install from: the URL, or "" while it is a placeholder."""
    repo_url = repo_url or REPO_URL
    return repo_url if is_public(repo_url) else ""


def colab_url(notebook: str, repo_url: str | None = None, branch: str | None = None) -> str:
    """Colab's address for notebooks/<notebook>.ipynb on GitHub (notebook: the stem).

    >>> colab_url("02_train_dcgan", "https://github.com/me/cargan_tf")
    'https://colab.research.google.com/github/me/cargan_tf/blob/main/notebooks/02_train_dcgan.ipynb'
    """
    repo_url, branch = repo_url or REPO_URL, branch or BRANCH
    prefix = "https://github.com/"
    if not repo_url.startswith(prefix):
        raise ValueError(f"Colab opens notebooks from GitHub only, not from {repo_url}")
    repo = repo_url[len(prefix):].rstrip("/").removesuffix(".git")
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/{NOTEBOOKS_DIR}/{notebook}.ipynb"


def badge_html(notebook: str, repo_url: str | None = None) -> str:
    """The badge as Colab writes it at the top of a notebook (HTML: opens in the same tab)."""
    return (f'<a href="{colab_url(notebook, repo_url)}" target="_parent">'
            f'<img src="{BADGE_SVG}" alt="Open In Colab"/></a>')


def badge_markdown(notebook: str, repo_url: str | None = None) -> str:
    """The badge as a Markdown image link (README's notebook table)."""
    return f"[![Open In Colab]({BADGE_SVG})]({colab_url(notebook, repo_url)})"
