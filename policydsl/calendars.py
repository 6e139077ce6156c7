"""Public-holiday calendars, from the `holidays` package.

Maintaining holiday tables by hand is a compliance risk (they change every
year, some by decree); the `holidays` package is kept current by its
community, so windows that say `except holidays "CN"` read from it.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import holidays


@lru_cache(maxsize=1)
def _supported() -> frozenset[str]:
    return frozenset(holidays.list_supported_countries())


def known_country(code: str) -> bool:
    return code in _supported()


@lru_cache(maxsize=512)
def _calendar(code: str, year: int) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays(code, years=year).keys())


def is_holiday(code: str, day: dt.date) -> bool:
    """Whether `day` is a public holiday in country `code` (ISO 3166-1)."""
    return day in _calendar(code, day.year)
