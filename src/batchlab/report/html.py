"""HTML rendering with jinja2 templates shipped inside the package."""

from __future__ import annotations

import math

import jinja2

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("batchlab.report", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)


def _num(value: object, digits: int = 4) -> str:
    """Numbers with `digits` significant figures; blanks for missing values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


_ENV.filters["num"] = _num


def render(template: str, **context: object) -> str:
    return _ENV.get_template(template).render(**context)
