"""Scoring, cut-offs, step-up and risk screening: pure functions, checked exhaustively or by property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.checkin.checkins import instruments, screening
from services.checkin.checkins.scoring import (
    GAD2_ITEMS,
    PHQ9_ITEMS,
    STEP_ITEMS,
    WHO5_ITEMS,
    Scores,
    Step,
    phq9_band,
    who5_band,
)

who5 = st.fixed_dictionaries({item: st.integers(0, 5) for item in WHO5_ITEMS})
phq9 = st.fixed_dictionaries({item: st.integers(0, 3) for item in PHQ9_ITEMS})
gad2 = st.fixed_dictionaries({item: st.integers(0, 3) for item in GAD2_ITEMS})


class TestScoringBounds:
    @given(who5, st.integers(1, 5))
    def test_who5_raw_and_index_stay_in_range_and_step_up_follows_the_cut_off(self, answers, mood):
        scores = Scores(answers=answers, mood=mood)
        assert 0 <= scores.who5_raw <= 25
        assert scores.who5_index == scores.who5_raw * 4 and 0 <= scores.who5_index <= 100
        assert (scores.after_weekly() is Step.phq2_gad2) == (scores.who5_raw < 13)
        assert who5_band(scores.who5_raw) == (
            "very_low" if scores.who5_raw <= 7 else "low" if scores.who5_raw < 13 else "good"
        )

    @given(who5, phq9, gad2)
    def test_phq_and_gad_scores_stay_in_range(self, w, p, g):
        scores = Scores(answers={**w, **p, **g}, mood=3)
        assert 0 <= (scores.phq2 or 0) <= 6 and 0 <= (scores.gad2 or 0) <= 6 and 0 <= (scores.phq9 or 0) <= 27
        assert (scores.after_step(Step.phq2_gad2) is Step.phq9) == (scores.phq2 >= 3)
        assert scores.after_step(Step.phq9) is None
        summary = scores.summary()
        assert summary["phq9_band"] == phq9_band(summary["phq9"])

    @given(who5, phq9, st.booleans())
    def test_risk_fires_exactly_on_the_documented_rules(self, w, p, crisis_words):
        scores = Scores(answers={**w, **p}, mood=3)
        reasons = screening.risk_reasons(scores, crisis_words)
        assert ("self_harm_item" in reasons) == (p["phq9_9"] > 0)
        assert ("crisis_language" in reasons) == crisis_words
        assert ("who5_very_low" in reasons) == (scores.who5_raw <= 7)
        assert ("phq9_severe" in reasons) == (scores.phq9 >= 20)
        expected = (
            "critical" if {"self_harm_item", "crisis_language"} & set(reasons) else "high" if reasons else "routine"
        )
        assert screening.severity(reasons) == expected

    @pytest.mark.parametrize(
        ("total", "band"),
        [(0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"), (14, "moderate"),
         (15, "moderately_severe"), (19, "moderately_severe"), (20, "severe"), (27, "severe")],
    )  # fmt: skip
    def test_phq9_bands(self, total, band):
        assert phq9_band(total) == band

    def test_incomplete_step_scores_are_none(self):
        scores = Scores(answers={item: 1 for item in WHO5_ITEMS}, mood=3)
        assert scores.phq2 is None and scores.gad2 is None and scores.phq9 is None
        assert set(scores.summary()) == {"who5_raw", "who5_index", "who5_band", "mood"}

    def test_steps_ask_for_phq2_gad2_then_only_the_rest_of_the_phq9(self):
        assert STEP_ITEMS[Step.phq2_gad2] == ("phq9_1", "phq9_2", "gad7_1", "gad7_2")
        assert STEP_ITEMS[Step.phq9] == tuple(f"phq9_{i}" for i in range(3, 10))


class TestScreeningText:
    @pytest.mark.parametrize(
        "note",
        [
            "Honestly I want to die",
            "sometimes I think about SUICIDE",
            "Je pense à me suicider",
            "J'ai envie de mourir",
            "Ya no quiero vivir",
            "pienso en quitarme la vida",
            "quiero hacerme daño",  # accent-insensitive
            "I'm thinking of hurting myself.",
        ],
    )
    def test_crisis_language_in_any_supported_language(self, note):
        assert screening.mentions_crisis(note)

    @pytest.mark.parametrize(
        "note", [None, "", "great week, lots of deadlines", "my son loves sonnets", "dying my hair"]
    )
    def test_no_crisis_language(self, note):
        assert not screening.mentions_crisis(note)

    def test_needs_from_note_in_three_languages_and_whole_words_only(self):
        assert screening.needs_from_note("Too many deadlines and I can't sleep") == {"workload", "sleep"}
        assert screening.needs_from_note("Me siento sola, los niños no duermen") == {"isolation", "parenting"}
        assert screening.needs_from_note("Je suis épuisée et stressée") == {"sleep", "stress"}
        assert screening.needs_from_note("sonnet reasons") == set()  # "son" and "season" do not match inside words

    def test_needs_from_scores(self):
        scores = Scores(answers={"who5_1": 3, "who5_2": 0, "who5_3": 1, "who5_4": 1, "who5_5": 3}, mood=2)
        assert screening.needs_from_scores(scores) == {"sleep", "stress", "energy", "low_mood"}


class TestLocaleAndCrisisResources:
    def test_body_wins_then_accept_language(self):
        assert screening.resolve_locale("fr", "BE", "es-MX,es;q=0.9") == screening.Locale("fr", "BE")
        assert screening.resolve_locale(None, None, "de-CH;q=0.9, es-MX, en;q=0.5") == screening.Locale("es", "MX")
        assert screening.resolve_locale(None, None, None) == screening.Locale("en", None)
        assert screening.resolve_locale(None, None, "garbage;;,,q=x, zz") == screening.Locale("en", None)

    def test_country_lines_in_the_users_language_first_then_international(self):
        out = screening.crisis_resources(screening.Locale("fr", "BE"))
        names = [r["name"] for r in out["resources"]]
        assert names[0].startswith("Centre de Prévention du Suicide") and "Zelfmoordlijn" in names[1]
        assert names[-1].startswith("Find A Helpline") and out["emergency_number"] == "112"
        assert out["message"].startswith("Vous n'avez pas")

    def test_unknown_country_gets_the_international_fallback(self):
        out = screening.crisis_resources(screening.Locale("es", "ZZ"))
        assert out["country"] is None and out["emergency_number"] is None
        assert [r["name"] for r in out["resources"]] == [
            screening.crisis_resources_data()["international"]["resources"][0]["name"]
        ]
        assert out["message"].startswith("No tienes")


class TestInstruments:
    def test_every_language_is_complete(self):
        instruments.check_complete()

    @pytest.mark.parametrize("lang", screening.SUPPORTED_LANGS)
    def test_forms_share_ids_and_values_across_languages(self, lang):
        def shape(forms):
            return [
                (f["id"], [(i["id"], [o["value"] for o in i.get("options", [])]) for i in f["items"]])
                for f in forms["forms"]
            ]

        assert shape(instruments.forms(lang)) == shape(instruments.forms("en"))
        weekly = instruments.forms(lang)["forms"][0]
        assert [o["value"] for o in weekly["items"][0]["options"]] == [5, 4, 3, 2, 1, 0]
        assert {i["id"] for i in weekly["items"]} >= {"note", "talk_to_someone", "share_note", "mood"}
