from pathlib import Path

from sqlalchemy import text
from sqlmodel import Session

from shared import audit
from shared.db import make_engine, run_migrations

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "checkin" / "migrations"
audit.use_key(b"k" * 32)  # the chain is keyed (the app factory uses the service's audit_key)


def _engine(url: str):
    run_migrations(url, MIGRATIONS)
    return make_engine(url)


def _fill(engine, n: int = 5) -> None:
    for i in range(n):
        with Session(engine) as s:
            audit.append(
                s,
                actor=f"c{i}",
                actor_role="counsellor",
                subject="s1" if i % 2 else "s2",
                action="contact.released",
                purpose="escalation",
            )
            s.commit()


def test_intact_chain_verifies(db_url):
    engine = _engine(db_url)
    _fill(engine)
    with Session(engine) as s:
        result = audit.verify(s)
        assert result.ok and result.checked == 5
        assert [e.actor for e in audit.entries_for(s, "s1")] == ["c1", "c3"]


def test_edited_entry_is_detected(db_url):
    engine = _engine(db_url)
    _fill(engine)
    with Session(engine) as s:
        s.exec(text("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 3"))
        s.commit()
        result = audit.verify(s)
    assert not result.ok and result.first_bad_seq == 3 and result.reason == "entry altered"


def test_deleted_entry_is_detected(db_url):
    engine = _engine(db_url)
    _fill(engine)
    with Session(engine) as s:
        s.exec(text("DELETE FROM audit_log WHERE seq = 2"))
        s.commit()
        result = audit.verify(s)
    assert not result.ok and result.first_bad_seq == 2


def test_deleted_last_entry_is_detected(db_url):
    engine = _engine(db_url)
    _fill(engine)
    with Session(engine) as s:
        s.exec(text("DELETE FROM audit_log WHERE seq = 5"))
        s.commit()
        result = audit.verify(s)
    assert not result.ok and result.reason == "missing entry"


def test_rolled_back_access_leaves_no_entry(db_url):
    engine = _engine(db_url)
    _fill(engine, 2)
    with Session(engine) as s:
        audit.append(s, actor="x", actor_role="counsellor", subject="s9", action="a", purpose="p")
        s.rollback()
    with Session(engine) as s:
        assert audit.verify(s).checked == 2
        assert audit.entries_for(s, "s9") == []
