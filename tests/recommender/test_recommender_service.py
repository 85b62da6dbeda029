"""The recommender end to end: consent gating, personalisation from real check-ins, freshness,
the profile, learning paths, fairness-audit consent, the catalogue API and roles."""

from __future__ import annotations

import uuid

from sqlmodel import Session, select

from services.recommender.audits.models import DeclaredAttribute, ExposureTally
from services.recommender.profiles.models import Interaction, NeedSignal, Preference
from tests.checkin.conftest import WEEKLY_LOW
from tests.consent.conftest import wait_until
from tests.recommender.conftest import Recommender


def new_sub() -> str:
    return f"E-{uuid.uuid4().hex[:12]}"


def rows(rec: Recommender, table: type, sub: str) -> list:
    with Session(rec.svc.runtime.engine) as session:
        return list(session.exec(select(table).where(table.pseudonym == rec.p.pseudonym(sub))).all())


class TestWithoutConsent:
    def test_everyone_gets_the_same_starting_list_and_nothing_is_kept(self, rec):
        a, b = new_sub(), new_sub()
        first, second = rec.recommendations(a, lang="fr"), rec.recommendations(b, lang="fr")
        assert first["personalised"] is False and first["why_not_personalised"] == "no-consent"
        assert first["items"] == second["items"]
        assert first["items"][-1]["kind"] == "counsellor"
        assert all(i["language"] == "fr" for i in first["items"])
        r = rec.svc.client.post(
            "/v1/me/interactions",
            json={"resource_id": first["items"][0]["resource_id"], "kind": "dismissed"},
            headers=rec.p.auth(a),
        )
        assert r.status_code == 202 and r.json() == {"recorded": False}
        assert rows(rec, Interaction, a) == []
        r = rec.svc.client.put("/v1/me/preferences", json={"topics": ["sleep"]}, headers=rec.p.auth(a))
        assert r.status_code == 403 and r.json()["purpose"] == "personalization"
        assert r.headers["content-type"].startswith("application/problem+json")

    def test_accept_language_chooses_the_lists_language(self, rec):
        r = rec.svc.client.get(
            "/v1/me/recommendations", headers={**rec.p.auth(new_sub()), "Accept-Language": "de-DE, es;q=0.8, en;q=0.5"}
        )
        assert r.json()["language"] == "es"


class TestPersonalised:
    def test_a_low_check_in_brings_professional_help_and_reasons_in_the_employees_language(self, rec):
        sub = new_sub()
        rec.set_consent(sub, "checkin", True)
        rec.set_consent(sub, "personalization", True)
        r = rec.p.services["checkin"].client.post(
            "/v1/checkins", json={"answers": WEEKLY_LOW, "lang": "es"}, headers=rec.p.auth(sub)
        )
        assert r.status_code == 201, r.text
        needs = wait_until(lambda: rows(rec, NeedSignal, sub))
        assert "low_mood" in needs[0].needs
        body = rec.recommendations(sub, lang="es")
        assert body["personalised"] and body["professional_help_included"]
        assert any(i["professional_help"] for i in body["items"][:3])
        reasons = [i["reason"]["text"] for i in body["items"]]
        assert "Porque nos dijiste que tu ánimo ha estado bajo." in reasons

    def test_preferences_language_and_dismissals(self, rec):
        sub = new_sub()
        rec.set_consent(sub, "personalization", True)
        auth = rec.p.auth(sub)
        r = rec.svc.client.put(
            "/v1/me/preferences", json={"language": "fr", "topics": ["sleep"], "minutes_available": 10}, headers=auth
        )
        assert r.status_code == 200 and r.json()["language"] == "fr"
        body = rec.recommendations(sub)
        assert body["language"] == "fr"
        first = body["items"][0]
        assert "sleep" in first["topics"] and first["reason"]["code"] in ("topic", "time")
        r = rec.svc.client.post(
            "/v1/me/interactions", json={"resource_id": first["resource_id"], "kind": "dismissed"}, headers=auth
        )
        assert r.json() == {"recorded": True}
        again = rec.recommendations(sub)
        assert first["resource_id"] not in [i["resource_id"] for i in again["items"]]

    def test_a_resource_rated_helpful_lifts_its_topics(self, rec):
        # The rating names a resource; its topics come from the catalogue as the list is ranked.
        sub = new_sub()
        rec.set_consent(sub, "personalization", True)
        auth = rec.p.auth(sub)
        before = rec.recommendations(sub)["items"]
        assert not any("parenting" in i["topics"] for i in before)
        r = rec.svc.client.post(
            "/v1/me/interactions", json={"resource_id": "parenting-course", "kind": "helpful"}, headers=auth
        )
        assert r.json() == {"recorded": True}
        after = rec.recommendations(sub)["items"]
        lifted = [i for i in after if "parenting" in i["topics"]]
        assert lifted and all(i["reason"]["code"] == "helpful" for i in lifted)

    def test_an_unknown_resource_is_404_and_a_bad_kind_422(self, rec):
        sub = new_sub()
        auth = rec.p.auth(sub)
        r = rec.svc.client.post("/v1/me/interactions", json={"resource_id": "no-such", "kind": "viewed"}, headers=auth)
        assert r.status_code == 404
        r = rec.svc.client.post(
            "/v1/me/interactions", json={"resource_id": "sleep-wind-down", "kind": "loved"}, headers=auth
        )
        assert r.status_code == 422 and "loved" not in r.text

    def test_withdrawal_returns_to_the_general_list_and_deletes_the_profile(self, rec):
        sub = new_sub()
        rec.set_consent(sub, "personalization", True)
        auth = rec.p.auth(sub)
        rec.svc.client.put("/v1/me/preferences", json={"topics": ["parenting"]}, headers=auth)
        rec.svc.client.post("/v1/me/interactions", json={"resource_id": "mood-walk", "kind": "helpful"}, headers=auth)
        assert rows(rec, Preference, sub) and rows(rec, Interaction, sub)
        rec.set_consent(sub, "personalization", False)
        assert rec.recommendations(sub)["personalised"] is False
        wait_until(lambda: not rows(rec, Preference, sub) and not rows(rec, Interaction, sub))
        profile = rec.get("/v1/me/profile", sub).json()
        assert profile["personalization"] is False and profile["preferences"] is None and profile["interactions"] == []

    def test_profile_shows_everything_and_delete_resets_it(self, rec):
        sub = new_sub()
        rec.set_consent(sub, "personalization", True)
        auth = rec.p.auth(sub)
        rec.svc.client.put("/v1/me/preferences", json={"formats": ["audio"]}, headers=auth)
        rec.svc.client.post("/v1/me/interactions", json={"resource_id": "mood-walk", "kind": "viewed"}, headers=auth)
        profile = rec.get("/v1/me/profile", sub).json()
        assert profile["preferences"]["formats"] == ["audio"]
        assert [i["resource_id"] for i in profile["interactions"]] == ["mood-walk"]
        assert rec.svc.client.delete("/v1/me/profile", headers=auth).status_code == 204
        profile = rec.get("/v1/me/profile", sub).json()
        assert profile["preferences"] is None and profile["interactions"] == []
        assert rec.recommendations(sub)["personalised"] is True  # the consent itself is untouched


class TestPaths:
    def test_progress_needs_consent_respects_prerequisites_and_adapts(self, rec):
        sub = new_sub()
        auth = rec.p.auth(sub)
        url = "/v1/me/paths/stress-skills/progress"
        assert (
            rec.svc.client.post(url, json={"module_id": "m1", "status": "completed"}, headers=auth).status_code == 403
        )
        rec.set_consent(sub, "personalization", True)
        locked = rec.svc.client.post(url, json={"module_id": "m2", "status": "completed"}, headers=auth)
        assert locked.status_code == 409
        r = rec.svc.client.post(
            url, json={"module_id": "m1", "status": "completed", "feedback": "too_hard"}, headers=auth
        )
        path = r.json()
        assert r.status_code == 200 and path["completed"] == 1
        assert path["next"] == {
            "module_id": "m2",
            "resource_id": "stress-grounding-54321",
            "title": path["next"]["title"],
            "gentler": True,
        }
        r = rec.svc.client.post(
            url, json={"module_id": "m2", "status": "completed", "feedback": "helpful"}, headers=auth
        )
        assert r.json()["next"]["module_id"] == "m3" and r.json()["next"]["gentler"] is False
        listing = rec.get("/v1/me/paths", sub, lang="es").json()
        stress = next(p for p in listing["items"] if p["id"] == "stress-skills")
        assert stress["title"] == "Habilidades para épocas de estrés"
        assert [m["status"] for m in stress["modules"]][:3] == ["completed", "completed", "available"]
        assert (
            rec.svc.client.post(
                "/v1/me/paths/nope/progress", json={"module_id": "m1", "status": "completed"}, headers=auth
            ).status_code
            == 404
        )


class TestFairnessAttributes:
    def test_no_attributes_without_the_consent_and_withdrawal_deletes_them(self, rec):
        sub = new_sub()
        auth = rec.p.auth(sub)
        body = {"attributes": {"gender": "woman"}}
        assert rec.svc.client.put("/v1/me/attributes", json=body, headers=auth).status_code == 403
        assert rows(rec, DeclaredAttribute, sub) == []
        rec.set_consent(sub, "fairness_audit", True)
        r = rec.svc.client.put("/v1/me/attributes", json=body, headers=auth)
        assert r.status_code == 200 and r.json()["attributes"] == {"gender": "woman"}
        bad = rec.svc.client.put("/v1/me/attributes", json={"attributes": {"gender": "robot"}}, headers=auth)
        assert bad.status_code == 422
        rec.recommendations(sub)
        assert rows(rec, ExposureTally, sub)[0].lists == 1
        rec.set_consent(sub, "fairness_audit", False)
        wait_until(lambda: not rows(rec, DeclaredAttribute, sub) and not rows(rec, ExposureTally, sub))

    def test_declared_attributes_never_change_the_ranking(self, rec):
        a, b = new_sub(), new_sub()
        for sub, gender in ((a, "woman"), (b, "man")):
            rec.set_consent(sub, "personalization", True)
            rec.set_consent(sub, "fairness_audit", True)
            rec.svc.client.put("/v1/me/preferences", json={"topics": ["stress"]}, headers=rec.p.auth(sub))
            rec.svc.client.put("/v1/me/attributes", json={"attributes": {"gender": gender}}, headers=rec.p.auth(sub))
        assert rec.recommendations(a)["items"] == rec.recommendations(b)["items"]


class TestFairnessReports:
    def test_a_report_is_released_once_stored_and_replayed_within_the_budget(self, rec):
        week = "2026-W49"
        admin = rec.p.auth("admin-1", "admin")
        run = rec.svc.client.post(
            "/v1/audits/fairness/run", params={"week": week, "attribute": "gender"}, headers=admin
        )
        assert run.status_code == 201, run.text
        report = run.json()
        assert report["rho"] == 0.5 and report["noise_scales"]["people"] > 0
        assert 0 < report["epsilon"] < 10 and report["delta"] == 1e-6
        again = rec.svc.client.post(
            "/v1/audits/fairness/run", params={"week": week, "attribute": "gender"}, headers=admin
        )
        assert again.status_code == 409  # released once, never re-drawn
        # 0.75 a week: a second attribute's report (rho 0.5) would overspend it
        over = rec.svc.client.post(
            "/v1/audits/fairness/run", params={"week": week, "attribute": "age_band"}, headers=admin
        )
        assert over.status_code == 409
        listed = rec.get("/v1/audits/fairness", "hr-1", "hr_analyst").json()["items"]
        assert next(r for r in listed if r["id"] == report["id"]) == report

    def test_only_hr_and_admins_read_reports(self, rec):
        for role in ("employee", "manager", "counsellor"):
            r = rec.get("/v1/audits/fairness", "someone", role)
            assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
        assert rec.svc.client.get("/v1/audits/fairness").status_code == 401
        assert rec.get("/v1/audits/fairness", "a-1", "admin").status_code == 200
        r = rec.svc.client.post(
            "/v1/audits/fairness/run",
            params={"week": "2026-W01", "attribute": "gender"},
            headers=rec.p.auth("hr-1", "hr_analyst"),
        )
        assert r.status_code == 403


class TestCatalogueApi:
    def test_public_browsing_filters_and_pages(self, rec):
        r = rec.svc.client.get("/v1/resources", params={"topic": "sleep", "lang": "es", "limit": 3})
        page = r.json()
        assert r.status_code == 200 and len(page["items"]) == 3 and page["next_cursor"]
        assert all("sleep" in i["topics"] and "es" in i["versions"] for i in page["items"])
        rest = rec.svc.client.get("/v1/resources", params={"topic": "sleep", "cursor": page["next_cursor"]}).json()
        assert not {i["id"] for i in rest["items"]} & {i["id"] for i in page["items"]}
        total = rec.svc.client.get("/v1/resources", params={"limit": 200}).json()["items"]
        assert len(total) >= 60
        # The shared cursor (shared/pagination): opaque, and 400 problem+json when not this list's.
        bad = rec.svc.client.get("/v1/resources", params={"cursor": "bm90LWEtY3Vyc29y"})
        assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"

    def test_admin_changes_reach_recommendations_and_others_are_refused(self, rec):
        body = {
            "id": f"test-{uuid.uuid4().hex[:8]}",
            "kind": "article",
            "format": "text",
            "topics": ["isolation"],
            "duration_minutes": 3,
            "versions": {"en": {"title": "Lunch roulette", "summary": "Meet someone new."}},
        }
        assert rec.svc.client.post("/v1/resources", json=body).status_code == 401
        assert rec.svc.client.post("/v1/resources", json=body, headers=rec.p.auth("e-1")).status_code == 403
        admin = rec.p.auth("admin-1", "admin")
        assert rec.svc.client.post("/v1/resources", json=body, headers=admin).status_code == 201
        assert rec.svc.client.post("/v1/resources", json=body, headers=admin).status_code == 409
        sub = new_sub()
        rec.set_consent(sub, "personalization", True)
        rec.svc.client.put(
            "/v1/me/preferences", json={"topics": ["isolation"], "minutes_available": 3}, headers=rec.p.auth(sub)
        )
        listed = rec.recommendations(sub, lang="es")["items"]
        mine = next(i for i in listed if i["resource_id"] == body["id"])
        assert mine["language"] == "en" and mine["language_fallback"] and mine["fallback_note"]
        update = {k: v for k, v in body.items() if k != "id"} | {"topics": ["parenting"]}
        r = rec.svc.client.put(f"/v1/resources/{body['id']}", json=update, headers=admin)
        assert r.status_code == 200 and r.json()["topics"] == ["parenting"]
        assert rec.svc.client.delete(f"/v1/resources/{body['id']}", headers=admin).status_code == 204
        assert rec.svc.client.get(f"/v1/resources/{body['id']}").status_code == 404
        assert body["id"] not in [i["resource_id"] for i in rec.recommendations(sub)["items"]]


class TestSubjectRights:
    def test_export_includes_the_recommender_and_erasure_removes_everything(self, rec):
        sub = new_sub()
        rec.set_consent(sub, "personalization", True)
        rec.set_consent(sub, "fairness_audit", True)
        auth = rec.p.auth(sub)
        rec.svc.client.put("/v1/me/preferences", json={"topics": ["energy"]}, headers=auth)
        rec.svc.client.put("/v1/me/attributes", json={"attributes": {"age_band": "25_34"}}, headers=auth)
        exported = rec.p.consent.client.get("/v1/me/export", headers=auth).json()
        mine = exported["services"]["recommender"]
        assert mine["profile"]["preferences"]["topics"] == ["energy"]
        assert mine["fairness_audit"]["declared_attributes"] == {"age_band": "25_34"}
        assert rec.p.consent.client.delete("/v1/me", headers=auth).status_code == 202
        wait_until(lambda: not rows(rec, Preference, sub) and not rows(rec, DeclaredAttribute, sub), timeout=20)
