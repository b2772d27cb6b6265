"""Demo feed: realistic change events of the three Anhui demo resources.

`DemoFeed` plays three provider systems at once (public security 户籍 CDC, market regulation
enterprise register, social insurance) and emits their changes as `Change`s, deterministic for a
seed. It keeps the live state of every resource, so an update or delete always refers to a
record that exists, with `before` equal to that record's current state, and the records join:
an enrolment's person is a generated resident, its employer a generated enterprise, a legal
representative is (mostly) a generated resident.

Mix: about 50% residents, 25% enterprises, 25% enrolments; 65% creates, 27% updates, 8%
deletes, after a warm-up of mostly creates (the first ~300 changes). Updates are what registers
see (moves, new phones, 户口 transfers, capital increases, 吊销/注销, base raises, suspensions);
deletes purge closed records (注销, 终止参保) and, for residents, mostly the elderly. A deleted
resident or enterprise now and then comes back as a create with the same key.

Invalid records: with probability `invalid_rate` a *create* carries a bad check character in an
identifier (resident ID, or unified social credit code), the rest of the record staying well
formed for its schema. Ingest must reject such a record to the dead-letter topic, so the feed
does not add it to its live state: no later change refers to it.

Time is simulated: `updated_at` starts at `start_ms` and grows by 20-1500 ms per change, so a
run is reproducible; pass `start_ms=now` for a live demo.
"""

from __future__ import annotations

import datetime
import math
import random
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from services.common.idnumbers import make_credit_code, make_resident_id
from services.ingest import demo_vocab as v

RESIDENTS = "psb.resident_population"
ENTERPRISES = "samr.enterprise_registration"
ENROLMENTS = "hrss.social_insurance_enrolment"
RESOURCES = (RESIDENTS, ENTERPRISES, ENROLMENTS)
KEY_FIELD = {RESIDENTS: "id_number", ENTERPRISES: "credit_code", ENROLMENTS: "enrolment_id"}
SYSTEM = {RESIDENTS: "psb-hukou", ENTERPRISES: "samr-qydj", ENROLMENTS: "hrss-sbxt"}
_POSITION_KIND = {RESIDENTS: "lsn", ENTERPRISES: "row", ENROLMENTS: "seq"}

_CST = datetime.timezone(datetime.timedelta(hours=8))
DEFAULT_START_MS = int(datetime.datetime(2024, 6, 3, 9, 0, tzinfo=_CST).timestamp() * 1000)

_ID_CHECK_CHARS = "0123456789X"
_CREDIT_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_PAIRS = [a + b for a in _CREDIT_CHARSET for b in _CREDIT_CHARSET]
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_VALUE = {c: int(c, 36) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}  # A=10 ... Z=35
_VILLAGE_SUFFIXES = "庄集圩岗湾店楼塘营桥郢"
_CREDIT_CODES_SINCE = datetime.date(2015, 10, 1)  # new registrations get "MA" org codes
_EMPLOYEE_INSURANCE_SINCE = datetime.date(1998, 1, 1)
_RESIDENT_PENSION_SINCE = datetime.date(2009, 10, 1)
_ENTERPRISES_SINCE = datetime.date(1993, 1, 1)
_FINAL_STATUSES = ("注销", "终止参保")

T = TypeVar("T")


@dataclass(frozen=True)
class Change:
    """One change of a provider record, as the provider system reports it."""

    resource: str  # RESIDENTS | ENTERPRISES | ENROLMENTS
    op: str  # "c" | "u" | "d"
    before: dict[str, Any] | None  # full previous record (u, d), else None
    after: dict[str, Any] | None  # full new record (c, u), else None
    position: str  # e.g. "psb-hukou:lsn:0000001234"; zero-padded, so it also sorts as a string
    system: str  # provider system name


def org_code_check_char(body: str) -> str:
    """Check character of an organisation code (GB 11714) from its 8-character body."""
    if len(body) != 8 or any(c not in _ORG_VALUE for c in body):
        raise ValueError("organisation code body must be 8 digits or capital letters")
    total = sum(_ORG_VALUE[c] * w for c, w in zip(body, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return "X" if check == 10 else "0" if check == 11 else str(check)


class _Picker(Generic[T]):
    """Weighted choice through an expanded table: one random() per pick, no bisect."""

    __slots__ = ("_n", "_table")

    def __init__(self, items: Sequence[T], weights: Sequence[float], size: int = 2000) -> None:
        scale = size / sum(weights)
        self._table: list[T] = []
        for item, weight in zip(items, weights, strict=True):
            self._table.extend([item] * max(1, round(weight * scale)))
        self._n = len(self._table)

    def pick(self, u: float) -> T:
        return self._table[int(u * self._n)]


class _Bag:
    """A set of keys with O(1) add, remove and uniform random pick (a set cannot pick)."""

    __slots__ = ("index", "keys")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return key in self.index

    def add(self, key: str) -> None:
        self.index[key] = len(self.keys)
        self.keys.append(key)

    def discard(self, key: str) -> None:
        i = self.index.pop(key, None)
        if i is None:
            return
        last = self.keys.pop()
        if last != key:  # swap the last key into the hole
            self.keys[i] = last
            self.index[last] = i

    def pick(self, u: float) -> str:
        return self.keys[int(u * len(self.keys))]


class _Live(_Bag):
    """Live records of one resource, by key."""

    __slots__ = ("records",)

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, dict[str, Any]] = {}

    def add_record(self, key: str, record: dict[str, Any]) -> None:
        self.add(key)
        self.records[key] = record

    def remove(self, key: str) -> dict[str, Any]:
        self.discard(key)
        return self.records.pop(key)


def _minus_years(day: datetime.date, years: int) -> datetime.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


class DemoFeed:
    """Deterministic stream of realistic provider changes (see the module docstring).

    `max_live` softly bounds the live records kept per resource (memory of a long demo): at the
    bound a create becomes an update, so creates only refill what deletes free.
    """

    def __init__(
        self,
        seed: int = 0,
        invalid_rate: float = 0.0,
        *,
        start_ms: int | None = None,
        max_live: int = 50_000,
    ) -> None:
        if not 0.0 <= invalid_rate <= 1.0:
            raise ValueError("invalid_rate must be within 0-1")
        self._rng = random.Random(seed)
        self._invalid_rate = invalid_rate
        self._max_live = max_live
        self._now_ms = DEFAULT_START_MS if start_ms is None else start_ms
        today = datetime.datetime.fromtimestamp(self._now_ms / 1000, tz=_CST).date()
        self._today = today
        # Birth-date bounds as ISO strings: comparing strings is the cheapest age test.
        self._born_by = [_minus_years(today, age).isoformat() for age in range(100)]
        self._live = {r: _Live() for r in RESOURCES}
        self._positions = dict.fromkeys(RESOURCES, 0)
        self._used_ids: set[str] = set()
        self._used_credit_codes: set[str] = set()
        self._enrolment_serial = 0
        # id_number -> {insurance type: enrolment_id} of the person's non-terminated enrolments,
        # so a person gets each insurance at most once and never both kinds of pension.
        self._insured: dict[str, dict[str, str]] = {}
        # Keys of records in their final state (注销, 终止参保): what registers purge first.
        self._closed = {ENTERPRISES: _Bag(), ENROLMENTS: _Bag()}
        self._deleted: dict[str, deque[dict[str, Any]]] = {
            RESIDENTS: deque(maxlen=256),
            ENTERPRISES: deque(maxlen=256),
        }
        self._build_pools()

    def _build_pools(self) -> None:
        regions = v.REGIONS
        self._region_pick = _Picker(regions, [r.weight for r in regions])
        self._region_prefix = {r.code: f"安徽省{r.city}市{r.name}" for r in regions}
        self._region_streets = {r.code: r.streets or v.CITY_STREETS[r.city] for r in regions}
        self._regions = {r.code: r for r in regions}
        self._surname_pick = _Picker([s for s, _ in v.SURNAMES], [w for _, w in v.SURNAMES])
        self._village_surnames = [s for s, _ in v.SURNAMES[:24]]
        self._ethnicity_pick = _Picker([e for e, _ in v.ETHNICITIES], [w for _, w in v.ETHNICITIES])
        self._age_band_pick = _Picker(range(len(v.AGE_BAND_WEIGHTS)), v.AGE_BAND_WEIGHTS)
        self._etype_pick = _Picker(v.ENTERPRISE_TYPES, [t[1] for t in v.ENTERPRISE_TYPES])
        self._industry_pick = _Picker(v.INDUSTRIES, [i.weight for i in v.INDUSTRIES])
        self._industries = {i.code: i for i in v.INDUSTRIES}
        self._l72 = self._industries["L72"]
        self._coop_trades: dict[str, tuple[str, ...]] = {}
        for trade, code in v.COOP_TRADES:
            self._coop_trades[code] = (*self._coop_trades.get(code, ()), trade)
        self._form_of_type = {t[0]: t[3] for t in v.ENTERPRISE_TYPES}
        self._creators: dict[str, Callable[[bool], dict[str, Any] | None]] = {
            RESIDENTS: self._create_resident,
            ENTERPRISES: self._create_enterprise,
            ENROLMENTS: self._create_enrolment,
        }
        self._updaters: dict[str, Callable[[dict[str, Any]], bool]] = {
            RESIDENTS: self._update_resident,
            ENTERPRISES: self._update_enterprise,
            ENROLMENTS: self._update_enrolment,
        }

    # ---------------------------------------------------------------- public API

    def next_change(self) -> Change:
        rng = self._rng
        self._now_ms += 20 + int(rng.random() * 1480)
        u = rng.random()
        resource = RESIDENTS if u < 0.5 else ENTERPRISES if u < 0.75 else ENROLMENTS
        if len(self._live[RESIDENTS]) < 50:  # legal reps and insured persons come from here
            resource = RESIDENTS
        n = len(self._live[resource])
        if n < 30:
            p_create, p_update = 1.0, 0.0
        elif n < 200:  # warm-up: build a population before changing it
            p_create, p_update = 0.9, 0.08
        else:
            p_create, p_update = 0.65, 0.27
        u = rng.random()
        change = None
        if u >= p_create + p_update:
            change = self._delete(resource)
        if (u >= p_create or n >= self._max_live) and change is None:
            change = self._update(resource)  # at the bound, creates wait for deletes
        if n >= self._max_live and change is None:
            change = self._delete(resource)
        return change or self._create(resource)

    def changes(self, n: int) -> Iterator[Change]:
        for _ in range(n):
            yield self.next_change()

    def random_live(self, resource: str, u: float) -> dict[str, Any] | None:
        """The live record of ``resource`` that ``u`` (in [0, 1)) picks, or None (read-only)."""
        live = self._live[resource]
        return live.records[live.pick(u)] if live else None

    def live_records(self, resource: str) -> Mapping[str, dict[str, Any]]:
        """Read-only view of the live records of a resource, by key (do not mutate them)."""
        return MappingProxyType(self._live[resource].records)

    # ---------------------------------------------------------------- ops

    def _emit(self, resource: str, op: str, before: dict | None, after: dict | None) -> Change:
        step = 24 + int(self._rng.random() * 2000) if resource == RESIDENTS else 1
        pos = self._positions[resource] = self._positions[resource] + step
        position = f"{SYSTEM[resource]}:{_POSITION_KIND[resource]}:{pos:010d}"
        return Change(resource, op, before, after, position, SYSTEM[resource])

    def _create(self, resource: str) -> Change:
        invalid = self._invalid_rate > 0.0 and self._rng.random() < self._invalid_rate
        record = None
        if not invalid and resource in self._deleted and self._rng.random() < 0.02:
            record = self._recreate(resource)
        if record is None:
            record = self._creators[resource](invalid)
        if record is None:  # enrolments need a working-age resident; create one first
            resource = RESIDENTS
            record = self._create_resident(invalid)
        # Hand out a copy: the caller may mutate it, the live state must not change.
        return self._emit(resource, "c", None, dict(record))

    def _recreate(self, resource: str) -> dict[str, Any] | None:
        """A deleted record comes back (moved back to the province, deregistration revoked)."""
        pool = self._deleted[resource]
        if not pool:
            return None
        i = int(self._rng.random() * len(pool))
        record = dict(pool[i])
        del pool[i]
        if resource == ENTERPRISES:
            record["status"] = "存续"
        else:
            record["address"] = self._home_address(
                self._regions[record["region_code"]], record["household_type"] == "农村"
            )
        record["updated_at"] = self._now_ms
        self._live[resource].add_record(record[KEY_FIELD[resource]], record)
        return record

    def _update(self, resource: str) -> Change | None:
        live = self._live[resource]
        rng = self._rng
        for _ in range(6):
            key = live.pick(rng.random())
            before = live.records[key]
            after = dict(before)
            if self._updaters[resource](after):
                after["updated_at"] = self._now_ms
                live.records[key] = after
                if after.get("status") in _FINAL_STATUSES:
                    self._closed[resource].add(key)
                return self._emit(resource, "u", before, dict(after))
        return None  # only final-state records drawn (注销, 终止参保): create instead

    def _delete(self, resource: str) -> Change | None:
        live = self._live[resource]
        rng = self._rng
        if not live:
            return None
        if resource == RESIDENTS:
            # Deregistration is mostly death: the oldest of a few drawn.
            keys = [live.pick(rng.random()) for _ in range(3)]
            key = min(keys, key=lambda k: live.records[k]["birth_date"])
        else:
            closed = self._closed[resource]
            # Registers purge closed records; now and then an erroneous one is withdrawn.
            if closed and rng.random() < 0.9:
                key = closed.pick(rng.random())
                closed.discard(key)
            elif rng.random() < 0.2:
                key = live.pick(rng.random())
                closed.discard(key)
            else:
                return None  # nothing to purge: the change becomes an update
            if resource == ENROLMENTS:
                self._uninsure(live.records[key])
        before = live.remove(key)
        if resource in self._deleted:
            self._deleted[resource].append(before)
        return self._emit(resource, "d", before, None)

    # ---------------------------------------------------------------- residents

    def _new_person(self, min_age: int = 0, max_age: int = 95) -> tuple[str, str, str, str, str]:
        """(id_number, name, gender, birth_date, region_code) of a new person born in Anhui."""
        rng = self._rng
        while True:
            age = self._age_band_pick.pick(rng.random()) * 5 + int(rng.random() * 5)
            if min_age <= age <= max_age:
                break
        birth = self._today - datetime.timedelta(days=int((age + rng.random()) * 365.2425))
        male = rng.random() < 0.51
        region = self._region_pick.pick(rng.random()).code
        while True:
            # GB 11643: an odd sequence number is a man's, an even one a woman's.
            seq = int(rng.random() * 500) * 2 + male
            id_number = make_resident_id(region, birth, seq)
            if id_number not in self._used_ids:
                break
        self._used_ids.add(id_number)
        gender = "M" if male else "F"
        return id_number, self._name(male, birth.year), gender, birth.isoformat(), region

    def _name(self, male: bool, year: int) -> str:
        rng = self._rng
        surname = self._surname_pick.pick(rng.random())
        u = rng.random()
        if year >= 2008 and u < 0.5:
            pool = v.MALE_YOUNG if male else v.FEMALE_YOUNG
            return surname + pool[int(rng.random() * len(pool))]
        if year < 1965 and u < 0.35:
            pool = v.MALE_OLD if male else v.FEMALE_OLD
            return surname + pool[int(rng.random() * len(pool))]
        chars = v.MALE_CHARS if male else v.FEMALE_CHARS
        last = chars[int(rng.random() * len(chars))]
        if rng.random() < (0.3 if year < 1995 else 0.12):
            return surname + last
        first = v.MALE_FIRST if male else v.FEMALE_FIRST
        return surname + first[int(rng.random() * len(first))] + last

    def _phone(self, birth_date: str) -> str | None:
        rng = self._rng
        if birth_date > self._born_by[14]:
            null_share = 0.8  # children: the guardian's number is on the guardian's record
        elif birth_date < self._born_by[80]:
            null_share = 0.4
        else:
            null_share = 0.08
        if rng.random() < null_share:
            return None
        prefix = v.MOBILE_PREFIXES[int(rng.random() * len(v.MOBILE_PREFIXES))]
        return f"{prefix}{int(rng.random() * 100_000_000):08d}"

    def _home_address(self, region: v.Region, rural: bool) -> str:
        rng = self._rng
        prefix = self._region_prefix[region.code]
        if rural and region.towns:
            town = region.towns[int(rng.random() * len(region.towns))]
            village = self._village_surnames[int(rng.random() * len(self._village_surnames))]
            suffix = _VILLAGE_SUFFIXES[int(rng.random() * len(_VILLAGE_SUFFIXES))]
            group = 1 + int(rng.random() * 12)
            return f"{prefix}{town}{village}{suffix}村{group}组{1 + int(rng.random() * 60)}号"
        streets = self._region_streets[region.code]
        street = streets[int(rng.random() * len(streets))]
        number = 1 + int(rng.random() ** 2 * 600)  # low numbers are more common
        u = rng.random()
        if u < 0.1:
            return f"{prefix}{region.seat}{street}{number}号"
        building = 1 + int(rng.random() * 30)
        room = f"{1 + int(rng.random() ** 1.5 * 32)}{1 + int(rng.random() * 4):02d}"
        if u < 0.25:
            unit = 1 + int(rng.random() * 4)
            return f"{prefix}{region.seat}{street}{number}号{building}栋{unit}单元{room}室"
        return f"{prefix}{region.seat}{street}{number}号{building}栋{room}室"

    def _create_resident(self, invalid: bool) -> dict[str, Any]:
        rng = self._rng
        id_number, name, gender, birth_date, region_code = self._new_person()
        region = self._regions[region_code]
        rural = rng.random() < region.rural_share
        record = {
            "id_number": id_number,
            "name": name,
            "gender": gender,
            "birth_date": birth_date,
            "ethnicity": self._ethnicity_pick.pick(rng.random()),
            "region_code": region_code,
            "address": self._home_address(region, rural),
            "phone": self._phone(birth_date),
            "household_type": "农村" if rural else "城镇",
            "updated_at": self._now_ms,
        }
        if invalid:
            record["id_number"] = self._corrupt(id_number, _ID_CHECK_CHARS)
        else:
            self._live[RESIDENTS].add_record(id_number, record)
        return record

    def _update_resident(self, rec: dict[str, Any]) -> bool:
        rng = self._rng
        u = rng.random()
        region = self._regions[rec["region_code"]]
        if u < 0.35:  # moved house within the county
            rec["address"] = self._home_address(region, rec["household_type"] == "农村")
        elif u < 0.65:  # new phone number, or gave up the old one
            phone = rec["phone"]
            if phone is not None and rng.random() < 0.15:
                rec["phone"] = None
            else:
                while rec["phone"] == phone:
                    prefix = v.MOBILE_PREFIXES[int(rng.random() * len(v.MOBILE_PREFIXES))]
                    rec["phone"] = f"{prefix}{int(rng.random() * 100_000_000):08d}"
        elif u < 0.85 or rec["household_type"] == "城镇":  # 户口迁移 to another county
            while region.code == rec["region_code"]:
                region = self._region_pick.pick(rng.random())
            rural = rng.random() < region.rural_share / 2  # people move towards towns
            rec["region_code"] = region.code
            rec["household_type"] = "农村" if rural else "城镇"
            rec["address"] = self._home_address(region, rural)
        else:  # 农转非: rural registration becomes urban, moving to the county seat
            rec["household_type"] = "城镇"
            rec["address"] = self._home_address(region, False)
        return True

    # ---------------------------------------------------------------- enterprises

    def _pick_adult(self, min_age: int, max_age: int) -> dict[str, Any] | None:
        live = self._live[RESIDENTS]
        if not live:
            return None
        young, old = self._born_by[min_age], self._born_by[max_age]
        for _ in range(8):
            rec = live.records[live.pick(self._rng.random())]
            if old < rec["birth_date"] <= young:
                return rec
        return None

    def _legal_rep(self) -> tuple[str, str, str]:
        """(name, id_number, birth_date) of a resident, or of someone not (yet) registered."""
        rec = self._pick_adult(22, 75) if self._rng.random() < 0.9 else None
        if rec is not None:
            return rec["name"], rec["id_number"], rec["birth_date"]
        id_number, name, _, birth_date, _ = self._new_person(25, 65)
        return name, id_number, birth_date

    def _org_code(self, established: datetime.date) -> str:
        rng = self._rng
        if established >= _CREDIT_CODES_SINCE:  # Anhui's post-2015 "MA2" series
            pairs = _CREDIT_PAIRS
            body = (
                "MA2"
                + pairs[int(rng.random() * len(pairs))]
                + pairs[int(rng.random() * len(pairs))]
                + _CREDIT_CHARSET[int(rng.random() * 31)]
            )
        else:
            body = f"{int(rng.random() * 100_000_000):08d}"
        return body + org_code_check_char(body)

    def _enterprise_name(self, form: str, region: v.Region, industry: v.Industry) -> str:
        rng = self._rng
        brand = v.BRANDS[int(rng.random() * len(v.BRANDS))]
        trade = industry.words[int(rng.random() * len(industry.words))]
        u = rng.random()
        if form == "jsc":
            return f"安徽{brand}{trade}股份有限公司"
        if form == "sole":
            suffix = v.SOLE_SUFFIXES[int(rng.random() * len(v.SOLE_SUFFIXES))]
            return f"{region.name}{brand}{trade}{suffix}"
        if form == "lp":
            return f"{region.city}{brand}{trade}合伙企业（有限合伙）"
        if form == "coop":
            return f"{region.name}{brand}{trade}专业合作社"
        suffix = "有限责任公司" if rng.random() < 0.2 else "有限公司"
        if u < 0.35:
            return f"安徽{brand}{trade}{suffix}"
        if u < 0.7:
            return f"{region.city}{brand}{trade}{suffix}"
        if u < 0.95:
            return f"{region.city}市{region.name}{brand}{trade}{suffix}"
        return f"{brand}（{region.city}）{trade}{suffix}"

    def _business_address(self, region: v.Region) -> str:
        rng = self._rng
        streets = self._region_streets[region.code]
        street = streets[int(rng.random() * len(streets))]
        number = 1 + int(rng.random() ** 2 * 900)
        address = f"{self._region_prefix[region.code]}{region.seat}{street}{number}号"
        u = rng.random()
        if u < 0.4:
            floor = 1 + int(rng.random() * 28)
            room = f"{floor}{1 + int(rng.random() * 20):02d}"
            return f"{address}{1 + int(rng.random() * 12)}栋{floor}层{room}室"
        if u < 0.6:
            return f"{address}{1 + int(rng.random() * 6)}号楼"
        return address

    def _create_enterprise(self, invalid: bool) -> dict[str, Any]:
        rng = self._rng
        etype, _, type_digit, form = self._etype_pick.pick(rng.random())
        region = self._region_pick.pick(rng.random())
        if form == "coop":
            trade, industry_code = v.COOP_TRADES[int(rng.random() * len(v.COOP_TRADES))]
            industry = v.Industry(industry_code, 1, (trade,))
        elif form == "lp":
            industry = self._l72
        else:
            industry = self._industry_pick.pick(rng.random())
        rep_name, rep_id, rep_birth = self._legal_rep()
        earliest = max(
            _ENTERPRISES_SINCE,
            datetime.date.fromisoformat(rep_birth) + datetime.timedelta(days=20 * 366),
        )
        span = max((self._today - earliest).days - 1, 0)
        # Registrations boomed after the 2014 commercial-registration reform: skew recent.
        established = earliest + datetime.timedelta(days=int(span * rng.random() ** 0.5))
        # City-level authorities register many companies under the city's own code.
        authority = region.code if rng.random() < 0.7 else region.code[:4] + "00"
        while True:
            code = make_credit_code("9" + type_digit + authority + self._org_code(established))
            if code not in self._used_credit_codes:
                break
        capitals = v.CAPITALS[form]
        record = {
            "credit_code": code,
            "name": self._enterprise_name(form, region, industry),
            "legal_rep_name": rep_name,
            "legal_rep_id_number": rep_id,
            "enterprise_type": etype,
            "registered_capital": capitals[int(rng.random() * len(capitals))],
            "established_date": established.isoformat(),
            "region_code": region.code,
            "address": self._business_address(region),
            "industry_code": industry.code,
            "status": "存续",
            "updated_at": self._now_ms,
        }
        if invalid:
            record["credit_code"] = self._corrupt(code, _CREDIT_CHARSET)
        else:
            self._used_credit_codes.add(code)
            self._live[ENTERPRISES].add_record(code, record)
        return record

    def _update_enterprise(self, rec: dict[str, Any]) -> bool:
        rng = self._rng
        status = rec["status"]
        if status == "注销":
            return False
        u = rng.random()
        if status == "吊销" or u < 0.15:
            rec["status"] = "注销"
        elif u < 0.23:  # licence revoked, typically for missing annual reports
            rec["status"] = "吊销"
        elif u < 0.45:
            region = self._regions[rec["region_code"]]
            if rng.random() < 0.2:  # moved to another county; the credit code stays
                region = self._region_pick.pick(rng.random())
                rec["region_code"] = region.code
            rec["address"] = self._business_address(region)
        elif u < 0.62:  # capital increase
            factor = (1.5, 2.0, 3.0, 5.0, 10.0)[int(rng.random() * 5)]
            rec["registered_capital"] = round(rec["registered_capital"] * factor, 2)
        elif u < 0.85:
            name, id_number, _ = self._legal_rep()
            if id_number == rec["legal_rep_id_number"]:
                return False
            rec["legal_rep_name"], rec["legal_rep_id_number"] = name, id_number
        else:  # renamed
            form = self._form_of_type[rec["enterprise_type"]]
            region = self._regions[rec["region_code"]]
            industry = self._industry_of(form, rec["industry_code"])
            name = self._enterprise_name(form, region, industry)
            if name == rec["name"]:
                return False
            rec["name"] = name
        return True

    def _industry_of(self, form: str, code: str) -> v.Industry:
        if form == "coop":
            return v.Industry(code, 1, self._coop_trades[code])
        return self._industries[code]

    # ---------------------------------------------------------------- enrolments

    def _pick_employer(self) -> dict[str, Any] | None:
        live = self._live[ENTERPRISES]
        if not live:
            return None
        for _ in range(5):
            rec = live.records[live.pick(self._rng.random())]
            if rec["status"] == "存续":
                return rec
        return None

    def _monthly_base(self) -> float:
        # Wages are log-normal; the base is clipped to the contribution floor and ceiling.
        return round(min(max(math.exp(self._rng.gauss(8.75, 0.42)), 4000.0), 30000.0), 2)

    def _create_enrolment(self, invalid: bool) -> dict[str, Any] | None:
        rng = self._rng
        residents = self._live[RESIDENTS]
        enrolments = self._live[ENROLMENTS]
        if len(residents) < 20:
            return None
        for _ in range(6):
            person_id = residents.pick(rng.random())
            person = residents.records[person_id]
            birth = person["birth_date"]
            if not self._born_by[64] < birth <= self._born_by[16]:
                continue
            active = self._insured.get(person_id) or {}
            if v.RESIDENT_PENSION in active:
                continue
            start: str | None = None
            base = 0.0  # 城乡居民 pay a yearly grade, not a share of a wage
            if active:  # more insurances with the same employer, same base, mostly same day
                missing = [t for t in v.EMPLOYEE_INSURANCE if t not in active]
                if not missing:
                    continue
                itype = missing[int(rng.random() * len(missing))]
                sibling = enrolments.records[next(iter(active.values()))]
                employer, region_code = sibling["employer_credit_code"], sibling["region_code"]
                base = sibling["monthly_base"]
                if rng.random() < 0.7:
                    start = sibling["start_date"]
                earliest = datetime.date.fromisoformat(sibling["start_date"])
            else:
                emp = None
                if person["household_type"] == "城镇" or rng.random() < 0.4:
                    emp = self._pick_employer()
                if emp is None:
                    itype, employer, region_code = v.RESIDENT_PENSION, None, person["region_code"]
                    earliest = max(_RESIDENT_PENSION_SINCE, self._date_at_age(birth, 16))
                else:
                    itype = v.EMPLOYEE_INSURANCE[0 if rng.random() < 0.6 else int(rng.random() * 4)]
                    employer, region_code = emp["credit_code"], emp["region_code"]
                    base = self._monthly_base()
                    earliest = max(
                        _EMPLOYEE_INSURANCE_SINCE,
                        self._date_at_age(birth, 16),  # the legal working age
                        datetime.date.fromisoformat(emp["established_date"]),
                    )
            if start is None:  # skewed recent: enrolments follow the job market
                earliest = min(earliest, self._today)
                span = (self._today - earliest).days
                day = earliest + datetime.timedelta(days=int(span * rng.random() ** 0.6))
                start = day.isoformat()
            self._enrolment_serial += 1 + int(rng.random() * 37)
            enrolment_id = f"AH{region_code[:4]}{self._enrolment_serial:010d}"
            record = {
                "enrolment_id": enrolment_id,
                "id_number": person_id,
                "name": person["name"],
                "employer_credit_code": employer,
                "insurance_type": itype,
                "monthly_base": base,
                "status": "参保缴费",
                "start_date": start,
                "region_code": region_code,
                "updated_at": self._now_ms,
            }
            if invalid:
                record["id_number"] = self._corrupt(person_id, _ID_CHECK_CHARS)
            else:
                enrolments.add_record(enrolment_id, record)
                self._insured.setdefault(person_id, {})[itype] = enrolment_id
            return record
        return None

    def _date_at_age(self, birth_date: str, age: int) -> datetime.date:
        born = datetime.date.fromisoformat(birth_date)
        return _minus_years(born, -age)

    def _uninsure(self, rec: dict[str, Any]) -> None:
        active = self._insured.get(rec["id_number"])
        if active and active.get(rec["insurance_type"]) == rec["enrolment_id"]:
            del active[rec["insurance_type"]]
            if not active:
                del self._insured[rec["id_number"]]

    def _update_enrolment(self, rec: dict[str, Any]) -> bool:
        rng = self._rng
        status = rec["status"]
        u = rng.random()
        if status == "终止参保":
            return False
        if status == "暂停缴费":
            rec["status"] = "参保缴费" if u < 0.6 else "终止参保"
        elif u < 0.55 and rec["employer_credit_code"] is not None and rec["monthly_base"] < 3e4:
            # the yearly base adjustment, capped at the contribution ceiling
            raised = rec["monthly_base"] * (1.02 + rng.random() * 0.1)
            rec["monthly_base"] = round(min(raised, 30000.0), 2)
        elif u < 0.8:
            rec["status"] = "暂停缴费"
        else:  # left the job (or the province)
            rec["status"] = "终止参保"
        if rec["status"] == "终止参保":
            self._uninsure(rec)
        return True

    # ---------------------------------------------------------------- invalid identifiers

    def _corrupt(self, identifier: str, charset: str) -> str:
        """The identifier with a wrong check character (its last one)."""
        wrong = charset.replace(identifier[-1], "")
        return identifier[:-1] + wrong[int(self._rng.random() * len(wrong))]
