"""Snapshot import: JSON lines and JSON, batches, progress, errors that never quote a record."""

from __future__ import annotations

import io
import json

import pytest

from shared.hris import EmployeeCreated, OrgUnitCreated, ProgressBar, SnapshotError, import_snapshot, iter_snapshot
from shared.hris import snapshot as snapshot_module


def write_jsonl(path, n_units=50, n_employees=1150):
    with path.open("w") as fh:
        for u in range(n_units):
            fh.write(json.dumps({"type": "org_unit.created", "org_unit": {"org_unit_id": f"u{u}", "parent_id": None}}))
            fh.write("\n")
        fh.write("\n")  # blank lines are skipped
        for e in range(n_employees):
            employee = {"employee_id": f"E{e:05d}", "org_unit": f"u{e % n_units}", "country": "DE"}
            fh.write(json.dumps({"type": "employee.created", "employee": employee}) + "\n")


def test_jsonl_is_streamed_in_batches_with_progress(tmp_path):
    path = tmp_path / "snapshot.jsonl"
    write_jsonl(path)
    seen, progress = [], []
    result = import_snapshot(path, lambda batch: seen.append(list(batch)), progress.append)
    assert (result.records, result.batches) == (1200, 3)
    assert [len(b) for b in seen] == [500, 500, 200]
    assert isinstance(seen[0][0], OrgUnitCreated) and isinstance(seen[-1][-1], EmployeeCreated)
    assert progress[-1].records == 1200 and progress[-1].fraction == 1.0
    assert all(a.bytes_read <= b.bytes_read for a, b in zip(progress, progress[1:], strict=False))


def test_json_document_yields_org_units_first(tmp_path):
    path = tmp_path / "snapshot.json"
    doc = {
        "employees": [{"employee_id": "E1", "org_unit": "eng"}],
        "org_units": [{"org_unit_id": "eng", "parent_id": "acme", "name": "Engineering"}, {"org_unit_id": "acme"}],
    }
    path.write_text(json.dumps(doc))
    (batch,) = list(iter_snapshot(path))
    assert [type(e) for e in batch] == [OrgUnitCreated, OrgUnitCreated, EmployeeCreated]
    path.write_text(json.dumps({"events": [{"type": "employee.left", "employee_id": "E1"}]}))
    assert [e.type for b in iter_snapshot(path) for e in b] == ["employee.left"]


def test_bad_records_name_their_line_but_never_their_content(tmp_path):
    path = tmp_path / "bad.jsonl"
    write_jsonl(path, n_units=1, n_employees=3)
    with path.open("a") as fh:
        fh.write(
            json.dumps({"type": "employee.created", "employee": {"employee_id": "E9", "email": "kai@secret.example"}})
        )
        fh.write("\n")
    with pytest.raises(SnapshotError) as err:
        import_snapshot(path, lambda batch: None)
    assert err.value.position == 6 and "secret.example" not in str(err.value)
    path.write_text('{"type": "employee.created", "employee": {"employee_id": "E1"}}\n{oops\n')
    with pytest.raises(SnapshotError, match="record 2: not valid JSON"):
        list(iter_snapshot(path))
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"org_units": [{"org_unit_id": "ok"}], "employees": [{"name": "Kai Secret"}]}))
    with pytest.raises(SnapshotError) as err:
        list(iter_snapshot(path))
    assert err.value.position == 2 and "Kai" not in str(err.value)


def test_large_json_documents_must_use_json_lines(tmp_path, monkeypatch):
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"events": []}) + " " * 200)
    monkeypatch.setattr(snapshot_module, "MAX_JSON_BYTES", 100)
    with pytest.raises(SnapshotError, match="JSON lines"):
        list(iter_snapshot(path))


def test_progress_bar_renders_one_line():
    out = io.StringIO()
    bar = ProgressBar(out, width=10)
    bar(snapshot_module.Progress(records=1000, bytes_read=50, total_bytes=100))
    bar(snapshot_module.Progress(records=2000, bytes_read=100, total_bytes=100))
    text = out.getvalue()
    assert "[#####-----]  50.0%  1,000 records" in text
    assert text.endswith("[##########] 100.0%  2,000 records\n")
