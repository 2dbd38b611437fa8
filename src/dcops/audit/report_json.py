"""The results document (JSON), its stable schema (``results.schema.json``, JSON Schema 2020-12),
and reading an earlier run back.

Stable: ``schema`` names the version (``dcops-audit-results/1``); fields are only added within a
version, never renamed or removed. Findings are sorted by host then check id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dcops.audit.evaluate import Finding

SCHEMA_ID = "dcops-audit-results/1"
SCHEMA_FILE = Path(__file__).with_name("results.schema.json")


def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return data


def validate_results(doc: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``doc`` does not follow the schema."""
    import jsonschema  # type: ignore[import-untyped]

    jsonschema.validate(doc, schema(), cls=jsonschema.Draft202012Validator)


def write_results(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def load_results(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    if doc.get("schema") != SCHEMA_ID:
        raise ValueError(f"{path}: not a {SCHEMA_ID} document (schema {doc.get('schema')!r})")
    return doc


def findings_of(doc: dict[str, Any]) -> list[Finding]:
    return [Finding.from_dict(f) for f in doc.get("findings", [])]
