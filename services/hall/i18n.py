"""The data hall's messages, Chinese first, English second: one dict per language.

Templates call ``t('catalog.count', n=3)``; a key missing from a language shows as the key itself
(tests/unit/test_hall_i18n.py checks that every key a template uses exists in both).
"""

from __future__ import annotations

from services.hall.messages_department import DEPT_EN, DEPT_ZH
from services.hall.messages_en import EN
from services.hall.messages_ops import OPS_EN, OPS_ZH
from services.hall.messages_zh import ZH

CATALOGUES: dict[str, dict[str, str]] = {
    "zh": {**ZH, **OPS_ZH, **DEPT_ZH},
    "en": {**EN, **OPS_EN, **DEPT_EN},
}


class Translator:
    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in CATALOGUES else "zh"
        self._messages = CATALOGUES[self.lang]

    def __call__(self, key: str, **values: object) -> str:
        text = self._messages.get(key, key)
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in self._messages


def translator(lang: str) -> Translator:
    return Translator(lang)
