"""Sphinx configuration of the xdownscale documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``; CI treats every
warning as an error. No extension here reaches the network (intersphinx is deliberately off).
"""

from __future__ import annotations

import datetime
import os
import sys

import sphinx_autosummary_accessors

# Importing the package registers the ``.downscale`` and ``.dustdiag`` accessors on xarray
# objects, which autosummary needs to find ``xarray.Dataset.downscale.fit`` and friends.
import xdownscale

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "_ext"))

project = "xdownscale"
author = "xdownscale developers"
copyright = f"{datetime.date.today().year}, {author}"
release = xdownscale.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_autosummary_accessors",
    "config_table",  # docs/_ext/config_table.py: the DownscaleConfig field table
]

templates_path = ["_templates", sphinx_autosummary_accessors.templates_path]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"
language = "en"
pygments_style = "sphinx"

# -- autodoc / autosummary / napoleon --------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc "Parameters" sections carry the types
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_param = True
napoleon_preprocess_types = False

# -- HTML ---------------------------------------------------------------------------------------
try:
    import pydata_sphinx_theme  # noqa: F401
except ImportError:  # the docs extra installs it; a bare Sphinx still builds with alabaster
    html_theme = "alabaster"
    html_theme_options = {"description": "Generative downscaling on xarray"}
else:
    html_theme = "pydata_sphinx_theme"
    html_theme_options = {
        "navigation_with_keys": False,
        "show_toc_level": 2,
        "secondary_sidebar_items": ["page-toc"],
    }
html_title = f"xdownscale {release}"
html_static_path = ["_static"]
html_show_sourcelink = False
