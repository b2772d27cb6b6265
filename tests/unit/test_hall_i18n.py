"""The data hall's message catalogues: every key a template or page uses, in both languages."""

from __future__ import annotations

import re
from pathlib import Path

from services.hall.i18n import CATALOGUES, translator
from services.hall.nav import NAV

HALL = Path(__file__).parents[2] / "services" / "hall"
LITERAL_KEY = re.compile(r"""\bt\(\s*['"]([a-z0-9_.]*[a-z0-9_])['"]""")
# Keys built in templates from a prefix and a value (``t('state.' ~ c.grant.state.value)``).
PREFIX_KEY = re.compile(r"""\bt\(\s*['"]([a-z0-9_]+\.)['"]\s*~""")


def used_keys() -> tuple[set[str], set[str]]:
    keys, prefixes = set(), set()
    for path in [*HALL.glob("templates/*.html"), *HALL.glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        keys |= set(LITERAL_KEY.findall(text))
        prefixes |= set(PREFIX_KEY.findall(text))
    return keys | {item.label for item in NAV}, prefixes


def test_both_languages_have_the_same_keys():
    assert set(CATALOGUES["zh"]) == set(CATALOGUES["en"])


def test_every_key_used_exists():
    keys, prefixes = used_keys()
    assert keys, "the scan found no key"
    missing = sorted(k for k in keys if k not in CATALOGUES["zh"])
    assert missing == []
    for prefix in prefixes:
        assert any(k.startswith(prefix) for k in CATALOGUES["zh"]), prefix


def test_translator_formats_and_falls_back_to_chinese():
    assert translator("en")("catalog.count", n=3) == "3 data resources"
    assert translator("xx")("catalog.count", n=3) == "共 3 项数据资源"
    assert translator("zh")("no.such.key") == "no.such.key"
