"""Demo social data: the water and power companies' bill payments of the demo's residents.

`UtilityFeed` plays two billing systems (合肥供水集团 营业收费系统, 国网安徽电力 营销系统). A bill
is issued (create, 未缴) for a household account in a month; it is then paid (update, 已缴,
with the payment date), or falls into arrears (update, 欠费) and is mostly paid later; now and
then a wrong bill is cancelled (delete, 冲正). The account holder is a live resident of the
government feed (`DemoFeed`), with their ID number, name and address, so the social data
joins the government's, as the policy wants. Usage follows the season (more power in summer
and winter, more water in summer); tariffs are Hefei's tiered ones for households.

`MixedFeed` interleaves it with the government feed: about one change in eight is a bill.
Deterministic for a seed, like `DemoFeed`.
"""

from __future__ import annotations

import datetime
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

from services.ingest.demo_data import RESIDENTS, Change, DemoFeed
from services.ingest.demo_data import RESOURCES as GOVERNMENT

WATER = "water.water_payment"
POWER = "power.electricity_payment"
UTILITIES = (WATER, POWER)
DEMO_RESOURCES = (*GOVERNMENT, *UTILITIES)  # every resource the demo feed writes
SYSTEM = {WATER: "water-yysf", POWER: "power-yxxt"}
_ACCOUNT_PREFIX = {WATER: "HFGS", POWER: "34"}
UTILITY_SHARE = 0.12  # of MixedFeed's changes
_CST = datetime.timezone(datetime.timedelta(hours=8))


def water_amount(m3: float) -> float:
    """Hefei's household water tariff: 3 tiers by monthly use (m³), sewage charge included."""
    tiers = ((15.0, 2.95), (22.0, 3.83), (float("inf"), 5.58))
    return _tiered(m3, tiers)


def power_amount(kwh: float) -> float:
    """Anhui's household electricity tariff: 3 tiers by monthly use (kWh)."""
    tiers = ((180.0, 0.5653), (350.0, 0.6153), (float("inf"), 0.8653))
    return _tiered(kwh, tiers)


def _tiered(used: float, tiers: tuple[tuple[float, float], ...]) -> float:
    total, below = 0.0, 0.0
    for ceiling, price in tiers:
        part = min(used, ceiling) - below
        if part <= 0:
            break
        total += part * price
        below = ceiling
    return round(total, 2)


# Monthly use by calendar month: summer cooling and winter heating for power, summer for water.
_POWER_SEASON = (1.3, 1.2, 0.9, 0.8, 0.9, 1.2, 1.6, 1.7, 1.1, 0.8, 0.9, 1.2)
_WATER_SEASON = (0.9, 0.9, 0.9, 1.0, 1.0, 1.1, 1.3, 1.3, 1.1, 1.0, 0.9, 0.9)


class UtilityFeed:
    """Bill changes of both companies for the live residents of ``residents``."""

    def __init__(
        self, pick_resident: Callable[[float], dict[str, Any] | None], seed: int, start_ms: int
    ) -> None:
        self._pick_resident = pick_resident
        self._rng = random.Random(seed)
        self._now_ms = start_ms
        self._accounts: dict[tuple[str, str], str] = {}  # (resource, holder id) -> account
        self._open: dict[str, list[str]] = {r: [] for r in UTILITIES}  # bills not paid yet
        self._bills: dict[str, dict[str, dict[str, Any]]] = {r: {} for r in UTILITIES}
        self._issued: set[str] = set()  # bill ids of the current billing month
        self._month = ""
        self._positions = dict.fromkeys(UTILITIES, 0)
        self._serial = 0

    def next_change(self) -> Change | None:
        """The next bill change, or None when none is due (no adult drawn, bill out already)."""
        rng = self._rng
        self._now_ms += 1000 + int(rng.random() * 60_000)
        resource = WATER if rng.random() < 0.5 else POWER
        open_bills = self._open[resource]
        u = rng.random()
        if open_bills and u < 0.45:
            return self._settle(resource, open_bills)
        if open_bills and u < 0.47:
            return self._cancel(resource, open_bills)
        return self._issue(resource)

    def _holder(self) -> dict[str, Any] | None:
        person = self._pick_resident(self._rng.random())
        if person is None or person["birth_date"] > "2008-01-01":  # an adult holds the account
            return None
        return person

    def _issue(self, resource: str) -> Change | None:
        person = self._holder()
        if person is None or (resource == WATER and not person["region_code"].startswith("3401")):
            return None  # the water company serves Hefei; State Grid the whole province
        rng = self._rng
        holder = person["id_number"]
        account = self._accounts.get((resource, holder))
        if account is None:
            self._serial += 1 + int(rng.random() * 9)
            account = f"{_ACCOUNT_PREFIX[resource]}{self._serial:010d}"
            self._accounts[(resource, holder)] = account
        today = datetime.datetime.fromtimestamp(self._now_ms / 1000, _CST).date()
        month = (today.replace(day=1) - datetime.timedelta(days=1)).strftime("%Y-%m")
        if month != self._month:  # a new billing month: last month's ids are not needed
            self._month, self._issued = month, set()
        bill_id = f"{account}{month.replace('-', '')}"
        if bill_id in self._issued:
            return None
        season = int(month[5:]) - 1
        if resource == WATER:
            usage = round(max(rng.gauss(12.0, 4.0), 1.0) * _WATER_SEASON[season], 1)
            amount = water_amount(usage)
        else:
            usage = round(max(rng.gauss(210.0, 80.0), 20.0) * _POWER_SEASON[season], 0)
            amount = power_amount(usage)
        bill = {
            "bill_id": bill_id,
            "account_no": account,
            "id_number": holder,
            "holder_name": person["name"],
            "address": person["address"],
            "region_code": person["region_code"],
            "billing_month": month,
            "usage": usage,
            "amount": amount,
            "status": "未缴",
            "paid_date": None,
            "updated_at": self._now_ms,
        }
        self._issued.add(bill_id)
        self._bills[resource][bill_id] = bill
        self._open[resource].append(bill_id)
        return self._emit(resource, "c", None, bill)

    def _settle(self, resource: str, open_bills: list[str]) -> Change:
        rng = self._rng
        bill_id = open_bills[int(rng.random() * len(open_bills))]
        before = self._bills[resource][bill_id]
        after = {**before, "updated_at": self._now_ms}
        if before["status"] == "未缴" and rng.random() < 0.12:
            after["status"] = "欠费"  # the due date passed unpaid
        else:
            day = datetime.datetime.fromtimestamp(self._now_ms / 1000, _CST).date()
            after |= {"status": "已缴", "paid_date": day.isoformat()}
            open_bills.remove(bill_id)
        # A paid bill changes no more: only open ones are kept.
        if bill_id in open_bills:
            self._bills[resource][bill_id] = after
        else:
            del self._bills[resource][bill_id]
        return self._emit(resource, "u", before, after)

    def _cancel(self, resource: str, open_bills: list[str]) -> Change:
        bill_id = open_bills.pop(int(self._rng.random() * len(open_bills)))
        before = self._bills[resource].pop(bill_id)
        return self._emit(resource, "d", before, None)

    def _emit(self, resource: str, op: str, before: dict | None, after: dict | None) -> Change:
        self._positions[resource] += 1
        position = f"{SYSTEM[resource]}:seq:{self._positions[resource]:010d}"
        copy = dict(after) if after is not None else None
        return Change(
            resource, op, dict(before) if before else None, copy, position, SYSTEM[resource]
        )


class MixedFeed:
    """The government feed with the utilities' bills interleaved (one change in eight)."""

    def __init__(self, government: DemoFeed, seed: int, start_ms: int) -> None:
        self.government = government
        self._rng = random.Random(seed ^ 0x5EED)
        self.utilities = UtilityFeed(lambda u: government.random_live(RESIDENTS, u), seed, start_ms)

    def next_change(self) -> Change:
        if self._rng.random() < UTILITY_SHARE:
            change = self.utilities.next_change()
            if change is not None:
                return change
        return self.government.next_change()

    def changes(self, n: int) -> Iterator[Change]:
        for _ in range(n):
            yield self.next_change()


def live_feed(seed: int, invalid_rate: float) -> MixedFeed:
    """The live demo's changes: the government feed with the utilities' bills, from now."""
    now_ms = int(time.time() * 1000)
    return MixedFeed(DemoFeed(seed=seed, invalid_rate=invalid_rate, start_ms=now_ms), seed, now_ms)
