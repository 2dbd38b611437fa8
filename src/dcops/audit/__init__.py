"""Compliance audit: catalogues as data, one read-only fact collection per host, checks
evaluated locally, waivers, attestations and reports (HTML, PDF, JSON, JUnit, plan, diff)."""

from __future__ import annotations

from dcops.audit.errors import AuditInputError

__all__ = ["AuditInputError"]
