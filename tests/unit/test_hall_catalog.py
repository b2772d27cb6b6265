"""The data hall's catalog pages: search by name (either language), provider, category and
share type; a resource's fields, schema history and the grants the viewer may see."""

from __future__ import annotations

import re

import pytest

from tests.unit.hall_client import HallWorld


@pytest.fixture(scope="module")
def world() -> HallWorld:
    return HallWorld()


def listed(page: str) -> list[str]:
    return re.findall(r'href="/hall/catalog/([a-z_]+\.[a-z_]+)"', page)


@pytest.mark.parametrize(
    ("query", "want"),
    [
        ("q=人口", ["psb.resident_population"]),
        ("q=ENTERPRISE", ["samr.enterprise_registration"]),
        ("provider=hrss", ["hrss.social_insurance_enrolment"]),
        ("share_type=unconditional", ["samr.enterprise_registration"]),
        (
            "category=social",
            ["gas.gas_payment", "power.electricity_payment", "water.water_payment"],
        ),
        ("q=人口&provider=samr", []),
    ],
)
def test_search(world, query, want):
    page = world.browser("edu-chen").get(f"/catalog?{query}")
    assert page.status_code == 200
    assert listed(page.text) == want


def test_a_resource_page_shows_sensitivity_schema_and_visible_grants(world):
    consumer = world.browser("mca-wang").get("/catalog/psb.resident_population").text
    assert re.search(r"id_number.*?L4", consumer, re.DOTALL)
    assert 'id="compatibility">BACKWARD<' in consumer
    assert "gov.psb.resident_population-value" in consumer
    assert "mca-resident-population" in consumer  # its own demo grant
    assert "edu-resident-population" not in consumer  # another department's
    authority = world.browser("admin").get("/catalog/psb.resident_population").text
    assert "edu-resident-population" in authority and "mca-resident-population" in authority


def test_an_unknown_resource_is_a_404_page_with_the_reason(world):
    r = world.browser("edu-chen").get("/catalog/psb.nothing")
    assert r.status_code == 404 and "no resource" in r.text


def test_bad_query_values_are_a_422_not_a_500(world):
    r = world.browser("edu-chen").get("/catalog?page=0")
    assert r.status_code == 422 and "page" in r.text
