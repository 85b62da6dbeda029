"""The check-in API over real HTTP: consent, validation, scoring, step-up, crisis resources, history."""

from __future__ import annotations

import json

import pytest

from services.checkin.checkins.schemas import CheckinResult, StepResult
from shared.consent_gate import ConsentGate
from tests.checkin.conftest import WEEKLY_LOW, WEEKLY_OK, new_sub

PHQ2_GAD2_POSITIVE = {"instrument": "phq2_gad2", "answers": {"phq9_1": 2, "phq9_2": 2, "gad7_1": 1, "gad7_2": 1}}
PHQ2_GAD2_NEGATIVE = {"instrument": "phq2_gad2", "answers": {"phq9_1": 1, "phq9_2": 0, "gad7_1": 0, "gad7_2": 0}}


def phq9_rest(item9: int = 0, each: int = 1) -> dict:
    return {"instrument": "phq9", "answers": {**{f"phq9_{i}": each for i in range(3, 9)}, "phq9_9": item9}}


def escalations(h, sub):
    return h.opened("checkin.escalation.", sub)  # as escalation reads them: sealed facts opened


def personalizations(h, sub):
    return h.opened("checkin.personalization.", sub)


class TestConsentAndGate:
    def test_without_checkin_consent_is_403_naming_the_purpose_before_validation(self, harness):
        sub = new_sub()
        for body in ({"answers": WEEKLY_OK}, {"nonsense": True}):
            r = harness.svc.client.post("/v1/checkins", json=body, headers=harness.auth(sub))
            assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
            assert r.json()["purpose"] == "checkin" and r.json()["type"].endswith("consent-required")

    def test_other_roles_and_missing_tokens_are_refused(self, harness):
        assert harness.svc.client.post("/v1/checkins", json={"answers": WEEKLY_OK}).status_code == 401
        r = harness.svc.client.post("/v1/checkins", json={"answers": WEEKLY_OK}, headers=harness.auth("M1", "manager"))
        assert r.status_code == 403

    def test_unsynced_gate_is_503_not_403_and_documented(self, harness):
        sub = new_sub()
        harness.grant(sub, "checkin")
        rt = harness.svc.runtime
        live, rt.gate = rt.gate, ConsentGate()  # a projection that has not synced
        try:
            r = harness.checkin(sub)
            assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
            assert r.headers["retry-after"] and r.json()["type"].endswith("consent-unavailable")
        finally:
            rt.gate = live
        assert harness.checkin(sub).status_code == 201
        spec = harness.svc.client.get("/openapi.json").json()
        responses = spec["paths"]["/v1/checkins"]["post"]["responses"]
        assert {"201", "403", "422", "503"} <= set(responses)
        assert "fails closed" in responses["503"]["description"]


class TestContract:
    def test_answers_match_their_documented_models(self, harness):
        sub = new_sub()
        harness.grant(sub, "checkin")
        for kwargs in ({}, {"answers": WEEKLY_LOW}, {"note": "I want to die", "country": "FR"}):
            body = harness.checkin(sub, **kwargs).json()
            assert CheckinResult.model_validate(body).model_dump(mode="json") == body
        pending = harness.checkin(sub, answers=WEEKLY_LOW).json()["next_step"]["post_to"]
        step = harness.svc.client.post(pending, json=PHQ2_GAD2_POSITIVE, headers=harness.auth(sub)).json()
        StepResult.model_validate(step)

    def test_openapi_documents_the_request_body(self, harness):
        spec = harness.svc.client.get("/openapi.json").json()
        body = spec["paths"]["/v1/checkins"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        body = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
        assert body["additionalProperties"] is False and "answers" in body["required"]
        ref = body["properties"]["answers"]["$ref"].rsplit("/", 1)[-1]
        assert set(spec["components"]["schemas"][ref]["properties"]) == {f"who5_{i}" for i in range(1, 6)} | {"mood"}
        assert spec["paths"]["/v1/checkins"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]


class TestValidation:
    @pytest.mark.parametrize(
        "body",
        [
            {"answers": {**WEEKLY_OK, "extra": 1}},
            {"answers": WEEKLY_OK, "unknown": "x"},
            {"answers": {**WEEKLY_OK, "who5_1": 6}},
            {"answers": {**WEEKLY_OK, "who5_1": -1}},
            {"answers": {**WEEKLY_OK, "mood": 0}},
            {"answers": {**WEEKLY_OK, "who5_2": True}},
            {"answers": {**WEEKLY_OK, "who5_2": 3.0}},
            {"answers": {**WEEKLY_OK, "who5_2": "3"}},
            {"answers": {k: v for k, v in WEEKLY_OK.items() if k != "who5_5"}},
            {"answers": WEEKLY_OK, "note": "x" * 2001},
            {"answers": WEEKLY_OK, "share_note": True},
            {"answers": WEEKLY_OK, "talk_to_someone": "yes"},
            {"answers": WEEKLY_OK, "lang": "de"},
            {"answers": WEEKLY_OK, "country": "fr"},
            {"answers": WEEKLY_OK, "note": "nul\x00byte"},
            [],
            "text",
        ],
    )
    def test_strict_validation_is_422_without_echoing_input(self, harness, body):
        sub = new_sub()
        harness.grant(sub, "checkin")
        r = harness.svc.client.post("/v1/checkins", json=body, headers=harness.auth(sub))
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert "x" * 50 not in r.text and "nul" not in r.text

    def test_malformed_json_and_oversized_body(self, harness):
        sub = new_sub()
        harness.grant(sub, "checkin")
        h = {**harness.auth(sub), "content-type": "application/json"}
        assert harness.svc.client.post("/v1/checkins", content=b"{nope", headers=h).status_code == 400
        assert harness.svc.client.post("/v1/checkins", content=b"{" * 70_000, headers=h).status_code == 413

    def test_note_of_exactly_2000_characters_is_accepted(self, harness):
        sub = new_sub()
        harness.grant(sub, "checkin")
        assert harness.checkin(sub, note="é" * 2000).status_code == 201


class TestCheckinAndStepUp:
    def test_good_week_returns_score_and_trend_and_no_step(self, harness):
        sub = new_sub()
        harness.grant(sub, "checkin")
        body = harness.checkin(sub).json()
        assert body["score"] == {**body["score"], "who5_raw": 19, "who5_index": 76, "who5_band": "good", "mood": 4}
        assert body["next_step"] is None and body["crisis"] is None
        assert body["trend"][-1] == {"iso_week": body["iso_week"], "who5_index": 76, "mood": 4}
        second = harness.checkin(sub, answers=WEEKLY_LOW).json()
        assert second["trend"] == [{"iso_week": body["iso_week"], "who5_index": 40, "mood": 2}]  # latest per week

    def test_low_wellbeing_steps_up_to_phq2_gad2_then_phq9(self, harness):
        sub = new_sub()
        harness.grant(sub, "checkin")
        first = harness.checkin(sub, answers=WEEKLY_LOW).json()
        assert first["next_step"] == {"form": "phq2_gad2", "post_to": f"/v1/checkins/{first['id']}/steps"}
        post = harness.svc.client.post
        url, auth = first["next_step"]["post_to"], harness.auth(sub)
        assert post(url, json=phq9_rest(), headers=auth).status_code == 409  # not the form it asked for
        step = post(url, json=PHQ2_GAD2_POSITIVE, headers=auth).json()
        assert step["score"]["phq2"] == 4 and step["score"]["phq2_positive"] and step["score"]["gad2"] == 2
        assert step["next_step"]["form"] == "phq9" and step["crisis"] is None
        final = post(url, json=phq9_rest(item9=0, each=2), headers=auth).json()
        assert final["next_step"] is None and final["score"]["phq9"] == 16
        assert final["score"]["phq9_band"] == "moderately_severe" and final["crisis"] is None
        assert post(url, json=phq9_rest(), headers=auth).status_code == 409  # nothing pending any more
        other = new_sub()
        harness.grant(other, "checkin")
        assert post(url, json=PHQ2_GAD2_POSITIVE, headers=harness.auth(other)).status_code == 404

    def test_negative_phq2_ends_the_step_up(self, harness):
        sub = new_sub()
        harness.grant(sub, "checkin")
        first = harness.checkin(sub, answers=WEEKLY_LOW).json()
        step = harness.svc.client.post(
            first["next_step"]["post_to"], json=PHQ2_GAD2_NEGATIVE, headers=harness.auth(sub)
        )
        assert step.json()["next_step"] is None and step.json()["score"]["phq2_positive"] is False


class TestCrisis:
    def test_crisis_resources_with_only_checkin_consent_and_nothing_else_flows(self, harness):
        sub = new_sub()
        harness.grant(sub, "checkin")
        r = harness.checkin(sub, note="I just want to end my life", country="GB")
        crisis = r.json()["crisis"]
        assert r.status_code == 201 and crisis["country"] == "GB" and crisis["emergency_number"] == "999"
        assert crisis["resources"][0]["name"] == "Samaritans" and crisis["resources"][0]["phone"] == "116 123"
        assert crisis["resources"][-1]["url"] == "https://findahelpline.com"
        harness.drained()
        assert escalations(harness, sub) == [] and personalizations(harness, sub) == []

    def test_phq9_item9_fires_at_the_step_and_escalates_under_consent(self, harness):
        sub = new_sub()
        harness.grant(sub, "checkin", "escalation")
        first = harness.checkin(sub, answers=WEEKLY_LOW, lang="es", country="MX").json()
        url, auth = first["next_step"]["post_to"], harness.auth(sub)
        harness.svc.client.post(url, json=PHQ2_GAD2_POSITIVE, headers=auth)
        final = harness.svc.client.post(url, json=phq9_rest(item9=1), headers=auth).json()
        assert final["crisis"]["country"] == "MX" and final["crisis"]["resources"][0]["phone"] == "800 911 2000"
        assert final["crisis"]["message"].startswith("No tienes")
        flags = harness.wait(lambda: escalations(harness, sub), "escalation flag")
        assert flags[0]["severity"] == "critical" and flags[0]["reasons"] == ["self_harm_item"]
        assert flags[0]["contact_requested"] is False and flags[0]["note"] is None and flags[0]["country"] == "MX"

    def test_very_low_who5_fires_and_accept_language_picks_language_and_country(self, harness):
        sub = new_sub()
        harness.grant(sub, "checkin")
        very_low = {**{f"who5_{i}": 1 for i in range(1, 6)}, "mood": 1}
        headers = {**harness.auth(sub), "accept-language": "fr-CA,fr;q=0.9,en;q=0.5"}
        body = harness.svc.client.post("/v1/checkins", json={"answers": very_low}, headers=headers).json()
        assert (
            body["lang"] == "fr" and body["crisis"]["country"] == "CA" and body["crisis"]["emergency_number"] == "911"
        )

    def test_asking_to_talk_flows_without_escalation_consent_and_shares_the_note_sealed(self, case_desk):
        harness = case_desk.harness
        sub = new_sub()
        harness.grant(sub, "checkin")
        note = "Workload is crushing me, could someone call?"
        r = harness.checkin(sub, note=note, talk_to_someone=True, share_note=True)
        assert r.json()["contact_requested"] is True and r.json()["crisis"] is None
        flag = harness.wait(lambda: escalations(harness, sub), "contact request")[0]
        assert flag["contact_requested"] is True and flag["reasons"] == ["contact_requested"]
        assert flag["severity"] == "routine" and flag["note"]["alg"] == "A256GCM"
        assert "crushing" not in json.dumps(flag)
        # The counsellor who holds the case opens it; the request for contact is its basis.
        case_id = case_desk.hold(sub, "C1")
        opened = case_desk.open_note(case_id, "C1")
        assert opened.status_code == 200 and opened.json() == {"text": note}
        refused = harness.svc.client.post("/v1/shared-notes/open", json={}, headers=harness.auth(sub))
        assert refused.status_code == 403


class TestHistoryAndInstruments:
    def test_own_history_is_decrypted_for_the_owner_only_and_deletable(self, harness):
        sub, other = new_sub(), new_sub()
        harness.grant(sub, "checkin")
        first = harness.checkin(sub, note="tired but ok").json()
        second = harness.checkin(sub, answers=WEEKLY_LOW).json()
        items = harness.svc.client.get("/v1/me/checkins", headers=harness.auth(sub)).json()["items"]
        assert [i["id"] for i in items] == [second["id"], first["id"]]
        assert (
            items[1]["note"] == "tired but ok"
            and items[0]["complete"] is False
            and items[0]["next_step"] == "phq2_gad2"
        )
        assert harness.svc.client.get("/v1/me/checkins", headers=harness.auth(other)).json() == {
            "items": [],
            "next_cursor": None,
        }
        assert (
            harness.svc.client.delete(f"/v1/me/checkins/{first['id']}", headers=harness.auth(other)).status_code == 404
        )
        assert (
            harness.svc.client.delete(f"/v1/me/checkins/{second['id']}", headers=harness.auth(sub)).status_code == 204
        )
        items = harness.svc.client.get("/v1/me/checkins", headers=harness.auth(sub)).json()["items"]
        assert [i["id"] for i in items] == [first["id"]]
        # The trend cache was dropped with the deleted check-in and is rebuilt from what is left.
        assert harness.checkin(sub, answers=WEEKLY_OK).json()["trend"][-1]["who5_index"] == 76

    @pytest.mark.parametrize(
        ("query", "header", "lang"),
        [("es", None, "es"), ("fr-CA", None, "fr"), ("de", "es-ES", "es"), (None, None, "en")],
    )
    def test_instruments_by_language(self, harness, query, header, lang):
        params = {"lang": query} if query else {}
        headers = {"accept-language": header} if header else {}
        body = harness.svc.client.get("/v1/instruments", params=params, headers=headers).json()
        assert body["lang"] == lang and [f["id"] for f in body["forms"]] == ["weekly", "phq2_gad2", "phq9"]
