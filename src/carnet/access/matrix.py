"""The habilitation matrix: data, not code (DOMAIN.md, "Habilitation matrix").

The default lives in ``habilitations.json`` beside this module; ``CARNET_HABILITATION_FILE`` replaces it. A profession
entry says either ``"read": "all"`` (with optional exclusions) or lists ``classes`` and ``class_types`` (a class
admitted for some of its types only); ``"access": false`` shuts the profession out of every dossier. ``"measures":
true`` lets the profession read the patient's measurements (devices, apps, the patient's hand; ``measures_about`` in
the file says why these professions).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DEFAULT_FILE = Path(__file__).with_name("habilitations.json")


@dataclass(frozen=True)
class ProfessionRights:
    access: bool = True
    read_all: bool = False
    classes: frozenset[str] = frozenset()
    class_types: frozenset[tuple[str, str]] = frozenset()  # (class, type) pairs admitted individually
    exclude_types: frozenset[str] = frozenset()
    exclude_type_prefixes: tuple[str, ...] = ()
    # reads the patient's measurements (weight, blood pressure, glucose…: carnet.measures) when authorized; absent
    # from an entry: no (fail closed)
    measures: bool = False

    def allows(self, class_code: str, type_code: str) -> bool:
        if not self.access:
            return False
        if type_code in self.exclude_types or type_code.startswith(self.exclude_type_prefixes or ("\0",)):
            return False
        if self.read_all:
            return True
        return class_code in self.classes or (class_code, type_code) in self.class_types


@dataclass(frozen=True)
class Matrix:
    professions: dict[str, ProfessionRights]
    default: ProfessionRights

    def rights(self, profession: str | None) -> ProfessionRights:
        if profession is None:
            return ProfessionRights(access=False)
        return self.professions.get(profession, self.default)


def _rights(entry: dict) -> ProfessionRights:
    unknown = set(entry) - {"label", "access", "read", "classes", "class_types", "exclude_types",
                            "exclude_type_prefixes", "measures"}
    if unknown:
        raise ValueError(f"habilitation matrix: unknown keys {sorted(unknown)}")
    return ProfessionRights(
        access=bool(entry.get("access", True)),
        read_all=entry.get("read") == "all",
        classes=frozenset(entry.get("classes", [])),
        class_types=frozenset((c, t) for c, types in entry.get("class_types", {}).items() for t in types),
        exclude_types=frozenset(entry.get("exclude_types", [])),
        exclude_type_prefixes=tuple(entry.get("exclude_type_prefixes", [])),
        measures=entry.get("measures") is True,
    )


def parse_matrix(data: dict) -> Matrix:
    return Matrix(professions={code: _rights(e) for code, e in data["professions"].items()},
                  default=_rights(data["default"]))


@lru_cache(maxsize=8)
def load_matrix(path: str | None = None) -> Matrix:
    return parse_matrix(json.loads(Path(path or DEFAULT_FILE).read_text(encoding="utf-8")))
