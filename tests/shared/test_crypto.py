from shared.crypto import period_token, pseudonym

KEY = b"k" * 32


def test_pseudonym_is_stable_keyed_and_tenant_scoped():
    p = pseudonym(KEY, "acme", "E123")
    assert p == pseudonym(KEY, "acme", "E123") and len(p) == 64
    assert p != pseudonym(KEY, "globex", "E123")
    assert p != pseudonym(b"o" * 32, "acme", "E123")
    assert "E123" not in p


def test_period_tokens_differ_between_periods_and_subjects():
    p = pseudonym(KEY, "acme", "E123")
    w1, w2 = period_token(KEY, p, "2026-W47"), period_token(KEY, p, "2026-W48")
    assert w1 != w2
    assert w1 == period_token(KEY, p, "2026-W47")
    assert w1 != period_token(KEY, pseudonym(KEY, "acme", "E124"), "2026-W47")
