"""Every query on learning-path progress."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, delete, select

from services.recommender.paths.models import PathProgress


def progress_of(session: Session, pseudonym: str) -> Sequence[PathProgress]:
    query = select(PathProgress).where(PathProgress.pseudonym == pseudonym).order_by(col(PathProgress.at))
    return session.exec(query).all()


def put(session: Session, row: PathProgress) -> None:
    session.merge(row)


def delete_of(session: Session, pseudonym: str) -> int:
    result = session.exec(delete(PathProgress).where(col(PathProgress.pseudonym) == pseudonym))  # type: ignore[call-overload]
    return result.rowcount or 0
