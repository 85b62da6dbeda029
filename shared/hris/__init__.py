"""Inbound HRIS integration: signed webhooks, the Kinwell HRIS format, vendor adapters,
the minimiser that turns HRIS facts into pseudonymised ``hris.*`` events, and snapshot import.

The consent service hosts the endpoints (``services/consent/hris/endpoints.py``, with
:func:`read_hris_webhook` and :func:`iter_document`); ``kinwell hris import FILE``
(:mod:`shared.hris.client`) posts a snapshot file to it in batches with a :class:`ProgressBar`.
"""

from shared.hris.adapters import VENDORS, BambooHrOptions, MergeOptions, adapt
from shared.hris.minimise import to_platform_events
from shared.hris.schema import (
    HRIS_EVENT,
    HRIS_EVENT_TYPES,
    Employee,
    EmployeeCreated,
    EmployeeLeft,
    EmployeeUpdated,
    HrisBatch,
    HrisEvent,
    OrgUnit,
    OrgUnitClosed,
    OrgUnitCreated,
    OrgUnitMoved,
    OrgUnitRenamed,
    TriggerAnnounced,
    parse_hris,
)
from shared.hris.snapshot import (
    ImportResult,
    Progress,
    ProgressBar,
    SnapshotError,
    import_snapshot,
    iter_document,
    iter_snapshot,
)
from shared.hris.verify import HrisWebhook, hris_webhook_router, read_hris_webhook, verify_hris_webhook

__all__ = [
    "HRIS_EVENT",
    "HRIS_EVENT_TYPES",
    "VENDORS",
    "BambooHrOptions",
    "Employee",
    "EmployeeCreated",
    "EmployeeLeft",
    "EmployeeUpdated",
    "HrisBatch",
    "HrisEvent",
    "HrisWebhook",
    "ImportResult",
    "MergeOptions",
    "OrgUnit",
    "OrgUnitClosed",
    "OrgUnitCreated",
    "OrgUnitMoved",
    "OrgUnitRenamed",
    "Progress",
    "ProgressBar",
    "SnapshotError",
    "TriggerAnnounced",
    "adapt",
    "hris_webhook_router",
    "import_snapshot",
    "iter_document",
    "iter_snapshot",
    "parse_hris",
    "read_hris_webhook",
    "to_platform_events",
    "verify_hris_webhook",
]
