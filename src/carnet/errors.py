"""The one error type of Carnet.

Code raises :class:`FhirError`; one handler in :mod:`carnet.app` turns it into an HTTP response whose body is a FHIR
``OperationOutcome`` (https://hl7.org/fhir/R4/operationoutcome.html). Messages must never carry health data: they name
the field at fault (``expression``, a FHIRPath), not its value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Issue:
    code: str  # http://hl7.org/fhir/issue-type (invalid, required, value, forbidden, not-found, conflict, ...)
    diagnostics: str
    expression: list[str] = field(default_factory=list)
    severity: str = "error"

    def to_fhir(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        named = [e for e in self.expression if e]  # an empty name (a query's "=x") is no FHIRPath: XML refuses it
        if named:
            out["expression"] = named
        return out


class FhirError(Exception):
    """An error that becomes an OperationOutcome with ``status``."""

    def __init__(self, status: int, code: str, diagnostics: str, expression: str | list[str] | None = None,
                 issues: list[Issue] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(diagnostics)
        self.status = status
        exprs = [expression] if isinstance(expression, str) else list(expression or [])
        self.issues = issues or [Issue(code=code, diagnostics=diagnostics, expression=exprs)]
        self.headers = headers or {}

    def outcome(self) -> dict[str, Any]:
        return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in self.issues]}


def invalid(diagnostics: str, expression: str | None = None, status: int = 400) -> FhirError:
    return FhirError(status, "invalid", diagnostics, expression)


def unprocessable(diagnostics: str, expression: str | None = None, code: str = "value") -> FhirError:
    return FhirError(422, code, diagnostics, expression)


def not_found(what: str = "Resource") -> FhirError:
    return FhirError(404, "not-found", f"{what} not found")


def forbidden(diagnostics: str) -> FhirError:
    return FhirError(403, "forbidden", diagnostics)


def conflict(diagnostics: str, expression: str | None = None) -> FhirError:
    return FhirError(409, "conflict", diagnostics, expression)
