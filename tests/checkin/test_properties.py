"""No JSON body, however odd, makes the check-in API answer 5xx (hypothesis, against the live service)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.checkin.conftest import WEEKLY_LOW, new_sub

scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=50)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)
answer_keys = st.sampled_from(["who5_1", "who5_2", "who5_3", "who5_4", "who5_5", "mood", "phq9_1", "gad7_1", "x"])
near_checkin = st.fixed_dictionaries(
    {"answers": st.dictionaries(answer_keys, scalars, max_size=7) | json_values},
    optional={
        "note": st.text(max_size=2100) | scalars,
        "talk_to_someone": scalars,
        "share_note": scalars,
        "lang": st.sampled_from(["en", "es", "fr", "xx", ""]) | scalars,
        "country": st.text(max_size=3) | scalars,
    },
)
near_step = st.fixed_dictionaries(
    {
        "instrument": st.sampled_from(["phq2_gad2", "phq9", "who5", ""]) | scalars,
        "answers": st.dictionaries(answer_keys, scalars) | json_values,
    }
)
near_nudge = st.fixed_dictionaries(
    {
        "weekday": st.sampled_from(["monday", "sunday", "x"]) | scalars,
        "time": st.sampled_from(["09:00", "25:00", "9"]) | scalars,
    },
    optional={
        "timezone": st.sampled_from(["Europe/Paris", "Nope/Nope", "../../etc/passwd", ""]) | scalars,
        "quiet_hours": json_values,
        "snooze_until": scalars,
    },
)
PROPERTY = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@pytest.fixture(scope="module")
def subject(shared_harness):
    sub = new_sub()
    shared_harness.grant(sub, "checkin", "personalization", "escalation", "aggregate_insights")
    return sub


def post_json(harness, method: str, url: str, sub: str, body) -> object:
    # json.dumps, not httpx's json=: infinities become the invalid JSON they are (a 400, not a crash here).
    headers = {**harness.auth(sub), "content-type": "application/json"}
    return harness.svc.client.request(method, url, content=json.dumps(body), headers=headers)


def assert_no_5xx(response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"


@PROPERTY
@given(body=json_values | near_checkin)
def test_any_checkin_body_is_answered_without_5xx(harness, subject, body):
    r = harness.svc.client.post(
        "/v1/checkins", content=json.dumps(body), headers={**harness.auth(subject), "content-type": "application/json"}
    )
    assert_no_5xx(r)
    assert r.status_code in (201, 400, 413, 422)


@PROPERTY
@given(body=json_values | near_step)
def test_any_step_body_is_answered_without_5xx(harness, subject, body):
    pending = harness.checkin(subject, answers=WEEKLY_LOW).json()["next_step"]["post_to"]
    assert_no_5xx(post_json(harness, "POST", pending, subject, body))


@PROPERTY
@given(body=json_values | near_nudge)
def test_any_nudge_body_is_answered_without_5xx(harness, subject, body):
    assert_no_5xx(post_json(harness, "PUT", "/v1/me/nudges", subject, body))


@PROPERTY
@given(raw=st.binary(max_size=300))
def test_any_bytes_are_answered_without_5xx(harness, subject, raw):
    r = harness.svc.client.post(
        "/v1/checkins", content=raw, headers={**harness.auth(subject), "content-type": "application/json"}
    )
    assert_no_5xx(r)
