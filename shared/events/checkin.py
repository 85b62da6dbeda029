"""Contracts published on ``checkin.*``: filled by the issue that builds the checkin flows."""

from __future__ import annotations
