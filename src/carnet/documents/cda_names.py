"""A CDA patient's name as a person reads it (issue 16 §2): each given name once, in order.

The ANS CI-SIS header (volume "En-tête des documents médicaux", patient identity under INS) states one name with
several parts, qualified with HL7 v3 EntityNamePartQualifier codes:

- ``family qualifier="BR"``: the birth family name (nom de naissance, an INS trait); ``family qualifier="SP"`` (or
  unqualified): the used family name (nom utilisé);
- ``given`` (unqualified): the first birth given name; ``given qualifier="BR"``: the list of birth given names,
  space-separated (an INS trait); ``given qualifier="CL"``: the used given name (prénom utilisé).

Read as a list of parts, such a name repeats itself ("PAT-TROIS DOMINIQUE MARIE-LOUISE DOMINIQUE PAT-TROIS
DOMINIQUE"). Carnet shows what the DMP shows on its identity banner: the birth given names once each, in their order,
then the family name in use; the birth family name when it differs from it, and a used given name that is not one of
the birth given names, are added in parentheses, labelled. A name with several ``name`` elements is read from the
first one. Prefixes (``Mme``, ``Dr``) are kept in front.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

V3 = "{urn:hl7-org:v3}"
LABELS = {"fr": {"birth": "nom de naissance", "used_given": "prénom utilisé"},
          "en": {"birth": "birth name", "used_given": "given name in use"}}


@dataclass(frozen=True)
class PersonName:
    prefixes: tuple[str, ...] = ()
    given: tuple[str, ...] = ()  # the birth given names, each once, in order
    family: str = ""  # the family name in use (the birth name when no other is stated)
    birth_family: str | None = None  # stated only when it differs from ``family``
    used_given: str | None = None  # stated only when it is not one of ``given``

    def __bool__(self) -> bool:
        return bool(self.given or self.family or self.prefixes)

    def shown(self, lang: str = "fr") -> str:
        words = LABELS.get(lang, LABELS["fr"])
        main = " ".join(x for x in (*self.prefixes, *self.given, self.family) if x)
        notes = [f"{words['birth']} : {self.birth_family}" if lang == "fr" else f"{words['birth']}: {self.birth_family}"
                 ] if self.birth_family else []
        if self.used_given:
            notes.append(f"{words['used_given']} : {self.used_given}" if lang == "fr" else
                         f"{words['used_given']}: {self.used_given}")
        return main + (f" ({', '.join(notes)})" if notes else "")


def _text(el: Any) -> str:
    return " ".join("".join(el.itertext()).split())


def _qualifiers(el: Any) -> set[str]:
    return set(str(el.get("qualifier") or "").upper().split())


def once(values: list[str]) -> list[str]:
    """``values`` without repeats (case-insensitive) or empty strings, in order."""
    out: list[str] = []
    seen: set[str] = set()
    for v in values:
        if v and v.casefold() not in seen:
            seen.add(v.casefold())
            out.append(v)
    return out


def person_name(el: Any) -> PersonName:
    """The ``name`` element ``el`` (or None) read as described in the module docstring."""
    if el is None:
        return PersonName()
    prefixes: list[str] = []
    given: list[str] = []
    used_given: list[str] = []
    birth: list[str] = []
    used: list[str] = []
    for part in el:
        if not isinstance(part.tag, str):
            continue
        text, q = _text(part), _qualifiers(part)
        if not text:
            continue
        if part.tag == f"{V3}prefix":
            prefixes.append(text)
        elif part.tag == f"{V3}given":
            (used_given if "CL" in q and "BR" not in q else given).append(text)
        elif part.tag == f"{V3}family":
            (birth if "BR" in q else used).append(text)
    if not (prefixes or given or used_given or birth or used):
        text = _text(el)  # a name given as plain text
        return PersonName(family=text) if text else PersonName()
    given = once([g for x in given for g in ([x] if " " not in x else x.split())])
    family = " ".join(once(used or birth))
    birth_family = " ".join(once(birth)) if used and birth and once(birth) != once(used) else None
    if not given and used_given:  # only a used given name: it is the given name shown
        given, used_given = once(used_given)[:1], []
    extra = [u for u in once(used_given) if u.casefold() not in {g.casefold() for g in given}]
    return PersonName(tuple(once(prefixes)), tuple(given), family, birth_family, extra[0] if extra else None)
