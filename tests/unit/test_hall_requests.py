"""The data hall's request form, inboxes and grant pages: every step is the control plane's
(refusals carry its reasons), and a bad form is a 4xx with the message, never a 500."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from tests.unit.hall_client import HallWorld

RESIDENTS = "psb.resident_population"
TODAY = dt.date.today()


def form(**changes) -> dict:
    body = {
        "resource": RESIDENTS,
        "purpose": "最低生活保障资格核查",
        "legal_basis": "《社会救助暂行办法》第十一条",
        "fields": ["id_number", "name", "region_code"],
        "mask.name": "default",
        "row_filter": "region_code startswith '3401'",
        "valid_from": str(TODAY),
        "valid_until": str(TODAY + dt.timedelta(days=30)),
    }
    return {**body, **changes}


def file_request(world: HallWorld, user: str = "mca-wang", **changes) -> str:
    b = world.browser(user)
    b.get(f"/requests/new?resource={RESIDENTS}")
    r = b.post("/requests", form(**changes))
    assert r.status_code == 303, r.text
    return r.headers["location"].rsplit("/", 1)[1]


@pytest.fixture
def world() -> HallWorld:
    return HallWorld(preview_rate="3/minute")


def test_a_consumer_files_a_request_with_default_masking(world):
    page = world.browser("mca-wang").get(f"/requests/new?resource={RESIDENTS}")
    assert page.status_code == 200
    assert re.search(r"id_number.*?L4", page.text, re.DOTALL), "the picker shows sensitivity"
    gid = file_request(world)
    case = world.plane.case(gid)
    assert case.grant.state == "requested" and case.grant.consumer == "mca"
    assert case.grant.masking["id_number"].method == "hmac"  # the L4 key, by default
    assert case.grant.masking["name"].method == "redact"


def test_a_chosen_masking_method_is_kept(world):
    gid = file_request(world, **{"mask.name": "drop"})
    assert world.plane.case(gid).grant.masking["name"].method == "drop"


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"purpose": ""}, "purpose"),
        ({"valid_until": "not-a-date"}, "valid_until"),
        ({"valid_until": str(TODAY - dt.timedelta(days=1))}, "valid_until is before"),
        ({"row_filter": "region_code >"}, "row_filter"),
        ({"fields": ["name"]}, "key fields"),
        ({"mask.name": "shred"}, "unknown masking method"),
        ({"resource": "psb.nothing"}, "no resource"),
    ],
)
def test_bad_forms_are_refused_with_the_reason(world, changes, says):
    b = world.browser("mca-wang")
    b.get("/catalog")
    r = b.post("/requests", form(**changes))
    assert 400 <= r.status_code < 500 and says in r.text, (r.status_code, r.text[-600:])


def test_only_a_consumer_may_request(world):
    b = world.browser("psb-li")
    b.get("/catalog")
    r = b.post("/requests", form())
    assert r.status_code == 403 and "only a consumer department may request" in r.text


def test_the_row_filter_is_checked_with_the_apis_parser(world):
    b = world.browser("mca-wang")
    b.get("/catalog")
    headers = {"HX-Request": "true", "X-CSRF-Token": b.csrf}
    bad = b.post("/requests/check-filter", {"resource": RESIDENTS, "row_filter": "salary > 3"},
                 csrf=False, headers=headers)  # fmt: skip
    assert bad.status_code == 200 and 'id="filter-problem"' in bad.text and "salary" in bad.text
    good = b.post("/requests/check-filter", form(), csrf=False, headers=headers)
    assert 'id="filter-ok"' in good.text


def test_preview_masks_filters_and_is_rate_limited(world):
    b = world.browser("mca-wang")
    b.get("/catalog")
    samples = (
        '[{"id_number": "340102197805144334", "name": "王国鑫", "region_code": "340102"},'
        ' {"id_number": "110101199003074514", "name": "李四", "region_code": "110101"}]'
    )
    for _ in range(3):
        r = b.post("/requests/preview", form(samples=samples))
        assert r.status_code == 200, r.text
    assert "王国鑫" not in r.text and "***" in r.text and "340102" in r.text
    assert r.text.count('class="filtered"') == 1  # 110101 is not Hefei
    r = b.post("/requests/preview", form(samples=samples), headers={"HX-Request": "true"})
    assert r.status_code == 429 and "preview" in r.text and 'class="refusal"' in r.text


def test_bad_preview_samples_are_a_422(world):
    b = world.browser("mca-wang")
    b.get("/catalog")
    r = b.post("/requests/preview", form(samples="[{"))
    assert r.status_code == 422 and "samples" in r.text


def test_provider_approves_authority_activates_with_a_timeline(world):
    gid = file_request(world)
    consumer = world.browser("mca-wang")
    assert consumer.get("/inbox").status_code == 403
    consumer.get(f"/grants/{gid}")
    r = consumer.post(f"/grants/{gid}/approve")
    assert r.status_code == 403 and "approve needs the provider role" in r.text

    provider = world.browser("psb-li")
    assert gid in provider.get("/inbox").text
    r = provider.post(f"/grants/{gid}/activate")
    assert r.status_code == 403 and "activate needs the authority role" in r.text
    assert provider.post(f"/grants/{gid}/approve", {"back": "/hall/inbox"}).status_code == 303

    admin = world.browser("admin")
    assert gid in admin.get("/inbox").text
    assert admin.post(f"/grants/{gid}/activate").status_code == 303
    assert world.plane.case(gid).grant.state == "active"
    page = consumer.get(f"/grants/{gid}")
    assert 'data-state="active"' in page.text
    steps = re.findall(r"<li><strong>(.*?)</strong>", page.text)
    assert steps == ["申请", "同意", "激活"]


def test_rejecting_needs_a_reason_and_shows_it(world):
    gid = file_request(world)
    provider = world.browser("psb-li")
    provider.get("/inbox")
    r = provider.post(f"/grants/{gid}/reject")
    assert r.status_code == 422 and "needs a reason" in r.text
    assert provider.post(f"/grants/{gid}/reject", {"reason": "用途不明确"}).status_code == 303
    assert "用途不明确" in world.browser("mca-wang").get(f"/grants/{gid}").text


def test_another_departments_grant_is_not_visible(world):
    gid = file_request(world)
    other = world.browser("edu-chen")
    assert other.get(f"/grants/{gid}").status_code == 404
    assert gid not in other.get("/grants").text
    assert gid not in world.browser("samr-zhao").get("/inbox").text  # not samr's resource
    r = world.browser("samr-zhao").post(f"/grants/{gid}/approve")
    assert r.status_code in (403, 404)


def test_expiry_and_suspension_are_not_hall_actions(world):
    gid = file_request(world)
    admin = world.browser("admin")
    admin.get(f"/grants/{gid}")
    assert admin.post(f"/grants/{gid}/expire").status_code == 404
    assert admin.post(f"/grants/{gid}/explode").status_code == 422


def late_and_fresh() -> tuple[HallWorld, str, str]:
    """A world with a request filed 30 days ago (overdue now) and one filed today."""
    now = [dt.datetime.now(dt.UTC) - dt.timedelta(days=30)]
    world = HallWorld(clock=lambda: now[0])
    late = file_request(world)
    now[0] = dt.datetime.now(dt.UTC)
    return world, late, file_request(world)


def test_overdue_requests_stand_out_first_in_the_inbox():
    old, late, fresh = late_and_fresh()
    page = old.browser("psb-li").get("/inbox").text
    assert f'id="grant-{late}" class="overdue"' in page
    assert f'id="grant-{fresh}">' in page
    assert page.index(late) < page.index(fresh)
