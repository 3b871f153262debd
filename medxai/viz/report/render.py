"""Building ``report.html`` from the Jinja2 templates shipped in ``medxai/viz/report/templates/``."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import jinja2
from markupsafe import Markup

from medxai.viz.report.pictures import OUTLINE_COLOUR

PAGE_TEMPLATE = "report.html.j2"
SCRIPT = "report.js"


@cache
def environment() -> jinja2.Environment:
    """The templates' environment: every ``{{ value }}`` is HTML-escaped, and undefined names are errors."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("medxai.viz.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals["outline_colour"] = OUTLINE_COLOUR
    return env


@cache
def script() -> Markup:
    """The page's script, read as it is (not a template: its braces are JavaScript's)."""
    text = (files("medxai.viz.report") / "templates" / SCRIPT).read_text(encoding="utf-8")
    if "</script" in text.lower():
        raise ValueError(f"templates/{SCRIPT} must not contain '</script'")
    return Markup(text)


def render_page(**context: Any) -> str:
    """The whole page from the view models in ``context`` (see ``templates/report.html.j2`` for the names)."""
    return environment().get_template(PAGE_TEMPLATE).render(script=script(), **context)
