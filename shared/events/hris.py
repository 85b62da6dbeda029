"""Contracts published on ``hris.*``: filled by the issue that builds the hris flows."""

from __future__ import annotations
