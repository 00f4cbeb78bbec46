"""A Sphinx directive that renders :class:`xdownscale.DownscaleConfig` fields as a table.

The prose (what each field means) lives in the ``.rst`` page; the values (default, the
``paper()`` and ``fast()`` presets) are read from the dataclass at build time, so they cannot
drift from the code. Every field must be described exactly once across the page's tables: a
field the docs forget, or a name the dataclass no longer has, is a build warning (and CI builds
with ``-W``).

Usage::

    .. config-fields:: Data preparation

       n_lags
          Days of history fed to both models.
       buffer_days
          Days kept before each season block.
"""

from __future__ import annotations

import dataclasses

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

_ENV_KEY = "xdownscale_config_fields"  # {field name: docname that describes it}


def _config_values():
    from xdownscale.estimator.config import DownscaleConfig

    default, paper, fast = DownscaleConfig(), DownscaleConfig.paper(), DownscaleConfig.fast()
    names = [f.name for f in dataclasses.fields(DownscaleConfig)]
    return names, default, paper, fast


def _fmt(value) -> str:
    if isinstance(value, str):
        return f'``"{value}"``'
    if isinstance(value, float):
        return f"``{value:g}``"
    return f"``{value!r}``"


def _parse_entries(lines: list[str]) -> list[tuple[str, str]]:
    """Pairs (field, description) from 'name' lines followed by indented description lines."""
    entries: list[tuple[str, list[str]]] = []
    for line in lines:
        if not line.strip():
            continue
        if line[0].isspace():
            if not entries:
                raise ValueError(f"description line before any field name: {line.strip()!r}")
            entries[-1][1].append(line.strip())
        else:
            entries.append((line.strip(), []))
    return [(name, " ".join(text)) for name, text in entries]


class ConfigFields(SphinxDirective):
    has_content = True
    optional_arguments = 1
    final_argument_whitespace = True

    def run(self):
        names, default, paper, fast = _config_values()
        try:
            entries = _parse_entries(list(self.content))
        except ValueError as err:
            logger.warning("config-fields: %s", err, location=self.get_location())
            return []
        store = _store(self.env)
        rows = []
        for name, text in entries:
            if name not in names:
                logger.warning("config-fields: %r is not a DownscaleConfig field", name,
                               location=self.get_location())
                continue
            if name in store and store[name] != self.env.docname:
                logger.warning("config-fields: %r is described twice", name,
                               location=self.get_location())
            store[name] = self.env.docname
            values = [getattr(obj, name) for obj in (default, paper, fast)]
            shown = [_fmt(values[0])] + [
                _fmt(v) if v != values[0] else "=" for v in values[1:]
            ]
            rows.append((f"``{name}``", *shown, text or " "))
        if not rows:
            return []
        title = self.arguments[0] if self.arguments else ""
        rst = [f".. list-table:: {title}", "   :header-rows: 1", "   :widths: 18 12 12 12 46", ""]
        rst += ["   * - field", "     - default", "     - ``paper()``", "     - ``fast()``",
                "     - meaning"]
        for row in rows:
            rst.append(f"   * - {row[0]}")
            rst += [f"     - {cell}" for cell in row[1:]]
        container = nodes.container()
        self.state.nested_parse(StringList(rst, source=self.get_source_info()[0]),
                                self.content_offset, container)
        return list(container.children)


def _store(env) -> dict[str, str]:
    store = getattr(env, _ENV_KEY, None)
    if store is None:
        store = {}
        setattr(env, _ENV_KEY, store)
    return store


def _purge(app, env, docname):
    store = getattr(env, _ENV_KEY, None)
    if store:
        for name in [k for k, v in store.items() if v == docname]:
            del store[name]


def _merge(app, env, docnames, other):
    _store(env).update(getattr(other, _ENV_KEY, {}) or {})


def _check(app, env):
    store = getattr(env, _ENV_KEY, None)
    if store is None:  # no page uses the directive (e.g. a partial build)
        return
    names, *_ = _config_values()
    missing = [n for n in names if n not in store]
    if missing:
        logger.warning("config-fields: DownscaleConfig fields without a description in the "
                       "docs: %s", ", ".join(missing))


def setup(app):
    app.add_directive("config-fields", ConfigFields)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("env-check-consistency", _check)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
