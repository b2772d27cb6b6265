"""Chinese identifier numbers: resident ID (GB 11643-1999) and unified social credit code
(GB 32100-2015). Validation, check characters, generators for tests and demos, and a leak scanner.
The check characters are python-stdnum's; the one check of the bus (ingest, ledger, scanners).
"""

from __future__ import annotations

import datetime
import re

from stdnum.cn import ric, uscc

# ASCII digits only: str.isdigit() would accept full-width and other Unicode digits.
_ID_SHAPE = re.compile(r"[1-8][0-9]{16}[0-9X]")
_FIRST17 = re.compile(r"[0-9]{17}")
_MIN_BIRTH_YEAR = 1900
_MAX_BIRTH_YEAR = 2100

_CREDIT_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # no I, O, Z, S, V

# Overlapping lookahead, no word boundaries: in Avro binary a string's length prefix can be an
# ASCII digit glued to the ID, and a leak scanner must prefer false positives over misses.
_ID_CANDIDATE = re.compile(r"(?=([0-9]{17}[0-9Xx]))")


def resident_id_check_char(first17: str) -> str:
    """Check character for the first 17 digits of a resident ID."""
    if not _FIRST17.fullmatch(first17):
        raise ValueError("resident ID body must be 17 ASCII digits")
    return ric.calc_check_digit(first17 + "0")  # stdnum reads the 17 before the check place


def _birth_date(s: str) -> datetime.date | None:
    try:
        born = datetime.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return None
    if not _MIN_BIRTH_YEAR <= born.year <= _MAX_BIRTH_YEAR:
        return None
    return born


def resident_id_valid(s: str) -> bool:
    """True if `s` is an 18-character resident ID with a real birth date and a correct check
    character; a lowercase x check character is accepted.

    Not ``ric.validate``: it also wants the region code to have existed in the birth year,
    which refuses real residents first registered after their district was re-coded."""
    if not isinstance(s, str):
        return False
    s = s.upper()
    if not _ID_SHAPE.fullmatch(s) or _birth_date(s) is None:
        return False
    return resident_id_check_char(s[:17]) == s[17]


def make_resident_id(region: str, birth: datetime.date, seq: int) -> str:
    """Build a valid resident ID; an odd `seq` makes a male ID, an even one a female ID."""
    if not re.fullmatch(r"[1-8][0-9]{5}", region):
        raise ValueError("region must be 6 ASCII digits starting with 1-8")
    if not _MIN_BIRTH_YEAR <= birth.year <= _MAX_BIRTH_YEAR:
        raise ValueError(f"birth year must be within {_MIN_BIRTH_YEAR}-{_MAX_BIRTH_YEAR}")
    if not 0 <= seq <= 999:
        raise ValueError("seq must be within 0-999")
    first17 = f"{region}{birth:%Y%m%d}{seq:03d}"
    return first17 + resident_id_check_char(first17)


def gender_of(resident_id: str) -> str:
    """Gender, "M" or "F", from the parity of the 17th digit; raises ValueError on an invalid ID."""
    if not resident_id_valid(resident_id):
        raise ValueError("not a valid resident ID")
    return "M" if int(resident_id[16]) % 2 else "F"


def make_credit_code(first17: str) -> str:
    """Append the check character to the first 17 characters of a unified social credit code."""
    if len(first17) != 17 or any(c not in _CREDIT_CHARSET for c in first17):
        raise ValueError(f"credit code body must be 17 characters from {_CREDIT_CHARSET}")
    return first17 + uscc.calc_check_digit(first17)


def credit_code_valid(s: str) -> bool:
    """True if `s` is an 18-character unified social credit code with a correct check character.
    Only the charset and check character are verified, not the registration authority or region
    segments. Lowercase letters are accepted."""
    # Not ``uscc.is_valid``: it wants 8 leading digits, and GB 32100 also has registration
    # authority Y (其他); and it strips spaces and dashes first, a stored code has none.
    if not isinstance(s, str) or len(s) != 18:
        return False
    s = s.upper()
    if any(c not in _CREDIT_CHARSET for c in s):
        return False
    return uscc.calc_check_digit(s[:17]) == s[17]


def find_resident_ids(text: str | bytes) -> list[str]:
    """Every valid resident ID inside `text`, overlapping and in order of position.

    Bytes are decoded as Latin-1 so that any byte string (e.g. a delivered Avro message) can be
    scanned without decode errors; ASCII digits survive unchanged.
    """
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("latin-1")
    return [m.group(1) for m in _ID_CANDIDATE.finditer(text) if resident_id_valid(m.group(1))]
