"""The group-commit base (``shared.db_writer.BatchWriter``) on real SQLite / PostgreSQL (``db_url``).

A minimal writer stores ``(id, value)`` items in a table whose ``value`` is NOT NULL, so an item
with no value fails in the database itself, as a real write would.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from shared.db import make_engine
from shared.db_writer import BatchWriter
from shared.errors import ServiceUnavailable

Item = tuple[int, str | None]


class ItemWriter(BatchWriter[Item, int]):
    """Writes each item as one row; records the batches it was asked to apply."""

    def __init__(self, engine: Engine, **kw: object) -> None:
        super().__init__(engine, name="test-writer", **kw)  # type: ignore[arg-type]
        self.applied: list[list[int]] = []
        self.hold: threading.Event | None = None  # when set: _apply waits, its rows written, before COMMIT
        self.holding = threading.Event()

    def hold_release(self) -> None:
        hold, self.hold = self.hold, None
        if hold is not None:
            hold.set()

    def _apply(self, session: Session, items: list[Item]) -> list[int]:
        self.applied.append([i for i, _ in items])
        rows = [{"id": i, "value": v} for i, v in items]
        session.execute(text("INSERT INTO item (id, value) VALUES (:id, :value)"), rows)
        if self.hold is not None:
            self.holding.set()
            assert self.hold.wait(10)
        return [i for i, _ in items]


@pytest.fixture
def engine(db_url: str):
    engine = make_engine(db_url, pool_size=2)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE item (id INTEGER PRIMARY KEY, value VARCHAR(20) NOT NULL)"))
    yield engine
    engine.dispose()


@pytest.fixture
def tagged_engine(db_url: str):
    """Like ``engine``, but an item's ``value`` must name a ``tag``, and that is checked only at
    COMMIT (a deferred foreign key): a bad item fails the transaction, not its own statement."""
    engine = make_engine(db_url, pool_size=2)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE tag (name VARCHAR(20) PRIMARY KEY)"))
        conn.execute(
            text(
                "CREATE TABLE item (id INTEGER PRIMARY KEY, value VARCHAR(20) NOT NULL"
                " REFERENCES tag (name) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
        conn.execute(text("INSERT INTO tag (name) VALUES ('a'), ('b'), ('d')"))
    yield engine
    engine.dispose()


def stored(engine: Engine) -> list[int]:
    """What another connection sees: committed rows only."""
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(text("SELECT id FROM item ORDER BY id"))]


def write_together(engine: Engine, items: list[tuple[int, str | None]]) -> tuple[ItemWriter, list[Any]]:
    """Hand ``items`` to a new writer at once (one batch), wait for every answer, stop it."""

    async def main() -> tuple[ItemWriter, list[Any]]:
        writer = ItemWriter(engine, max_batch=64)
        try:
            writes = asyncio.gather(*(writer.write(i) for i in items), return_exceptions=True)
            return writer, await asyncio.wait_for(writes, 20)
        finally:
            await writer.stop()

    return asyncio.run(main())


class TestBatchWriter:
    def test_a_failing_item_fails_alone_and_the_others_commit(self, engine):
        writer, results = write_together(engine, [(1, "a"), (2, "b"), (3, None), (4, "d")])
        assert results[:2] == [1, 2] and results[3] == 4
        assert isinstance(results[2], IntegrityError)
        assert writer.applied[0] == [1, 2, 3, 4]  # tried together first, then one by one ...
        assert writer.applied[1:] == [[1], [2], [3], [4]]
        assert writer.batches == 1 and writer.rows == 3  # ... each in its own savepoint, one commit
        assert stored(engine) == [1, 2, 4]

    def test_an_item_failing_at_commit_fails_alone_and_the_others_commit(self, tagged_engine):
        writer, results = write_together(tagged_engine, [(1, "a"), (2, "b"), (3, "untagged"), (4, "d")])
        assert results[:2] == [1, 2] and results[3] == 4
        assert isinstance(results[2], IntegrityError)
        assert writer.applied[0] == [1, 2, 3, 4]  # one batch; its COMMIT fails, and so does ...
        assert writer.applied[1:5] == [[1], [2], [3], [4]]  # ... the one with a savepoint per item
        assert writer.applied[5:] == [[1], [2], [3], [4]]  # then a transaction per item
        assert writer.batches == 3 and writer.rows == 3
        assert stored(tagged_engine) == [1, 2, 4]

    def test_futures_resolve_only_after_commit(self, engine):
        async def main():
            commits: list[list[int]] = []
            writer = ItemWriter(engine, max_batch=64)
            writer.on_commit = lambda: commits.append(stored(engine))
            writer.hold = threading.Event()
            try:
                pending = asyncio.ensure_future(writer.write((7, "x")))
                assert await asyncio.to_thread(writer.holding.wait, 10)  # written, not yet committed
                await asyncio.sleep(0.05)
                assert not pending.done()
                assert await asyncio.to_thread(stored, engine) == []
                writer.hold.set()
                assert await asyncio.wait_for(pending, 20) == 7
                assert stored(engine) == [7]  # committed when the caller got its answer
                assert commits == [[7]]
            finally:
                writer.hold.set()
                await writer.stop()

        asyncio.run(main())

    def test_stop_writes_queued_work_refuses_new_work_and_answers_the_batch_in_flight(self, engine):
        async def main():
            writer = ItemWriter(engine, max_batch=64)
            writer.hold = threading.Event()
            first = asyncio.ensure_future(writer.write((1, "a")))
            assert await asyncio.to_thread(writer.holding.wait, 10)  # the first batch is in the thread
            queued = [asyncio.ensure_future(writer.write((i, "q"))) for i in (2, 3)]
            await asyncio.sleep(0)
            stopping = asyncio.ensure_future(writer.stop())
            await asyncio.sleep(0)
            late = await asyncio.gather(writer.write((4, "late")), return_exceptions=True)
            await asyncio.sleep(0.05)
            assert not stopping.done()  # waits for the batch in the thread
            writer.hold_release()
            await asyncio.wait_for(stopping, 10)
            results = await asyncio.wait_for(asyncio.gather(*queued, return_exceptions=True), 1)
            return writer, results, late, await asyncio.wait_for(first, 1)

        writer, results, late, answered = asyncio.run(main())
        assert answered == 1 and results == [2, 3]  # queued before the stop: written and answered
        assert writer.applied == [[1], [2, 3]] and stored(engine) == [1, 2, 3]
        assert isinstance(late[0], ServiceUnavailable) and late[0].status == 503  # after: refused

    def test_stop_fails_what_it_could_not_write_in_time_with_503(self, engine):
        async def main():
            writer = ItemWriter(engine, max_batch=1)
            writer.hold = threading.Event()
            first = asyncio.ensure_future(writer.write((1, "a")))
            assert await asyncio.to_thread(writer.holding.wait, 10)
            queued = asyncio.ensure_future(writer.write((2, "q")))
            await asyncio.sleep(0)
            stopping = asyncio.ensure_future(writer.stop(timeout=0.2))
            await asyncio.sleep(0.5)  # past the timeout, the first batch still in the thread
            writer.hold_release()
            await asyncio.wait_for(stopping, 10)
            return writer, await asyncio.gather(queued, return_exceptions=True), await asyncio.wait_for(first, 1)

        writer, (result,), answered = asyncio.run(main())
        assert answered == 1 and stored(engine) == [1]  # committed, so answered as such, never a 503
        assert isinstance(result, ServiceUnavailable) and result.status == 503
        assert writer.applied == [[1]]  # the queued item never reached the database

    def test_a_batch_holds_at_most_max_batch_by_size(self, engine):
        class Sized(ItemWriter):
            def _size(self, item: Item) -> int:
                return 2

        async def main():
            writer = Sized(engine, max_batch=4)
            try:
                await asyncio.wait_for(asyncio.gather(*(writer.write((i, "v")) for i in range(5))), 20)
                return writer
            finally:
                await writer.stop()

        writer = asyncio.run(main())
        assert writer.applied == [[0, 1], [2, 3], [4]]
        assert writer.batches == 3 and writer.rows == 10
        assert stored(engine) == [0, 1, 2, 3, 4]
