"""Every consumer handler that asks the consent gate tells "unknown" from "denied" (issue 12
item 1): the recommender's HRIS profile handler used ``gate.allowed`` and so dropped profiles read
while its gate was loading."""

from __future__ import annotations

import pytest

from services.recommender.profiles import handlers
from shared.bus.failures import NotYet
from shared.consent_gate import ConsentGate, kv_key, kv_value
from shared.eventkeys import EventKeyring
from shared.events.checkin import gated
from shared.events.hris import PersonalizationProfile

P, OTHER = "ab" * 32, "cd" * 32


def test_gated_by_purpose_puts_back_unknown_and_drops_denied() -> None:
    seen: list[str] = []
    gate = ConsentGate()
    handle = gated(gate, lambda _s, e: seen.append(e.pseudonym), purpose="personalization")
    with pytest.raises(NotYet):
        handle(None, PersonalizationProfile(pseudonym=P))
    gate.load({kv_key(P, "personalization"): kv_value("granted", 1, "t")})
    handle(None, PersonalizationProfile(pseudonym=P))
    handle(None, PersonalizationProfile(pseudonym=OTHER))  # denied: dropped
    assert seen == [P]


def test_the_recommenders_profile_consumer_waits_for_an_unsynced_gate() -> None:
    gate = ConsentGate()
    (binding,) = [
        b
        for b in handlers.bindings(gate, EventKeyring(b"k" * 32), b"p" * 32)
        if b.filter_subject == "hris.personalization.>"
    ]
    assert getattr(binding.handler, "consent_gate", None) is gate  # the consumer waits for it
    with pytest.raises(NotYet):  # never synced: put back, not acknowledged as denied
        binding.handler(None, PersonalizationProfile(pseudonym=P))
