"""Print the layer diagram of docs/ARCHITECTURE.md from the contracts in `.importlinter` (Mermaid).

`tests/test_architecture.py` checks that the diagram in the docs is the one this script prints, so the picture stays
as true as the contracts that CI enforces. `python scripts/layers_diagram.py --write` rewrites it in place.
"""

from __future__ import annotations

import configparser
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
BEGIN, END = "<!-- layers:begin (scripts/layers_diagram.py) -->", "<!-- layers:end -->"

# What each layer is for, by the first module named on its line of the contract.
TITLES = {
    "carnet.asgi": "ASGI entry point",
    "carnet.app": "application factory: middleware, error handlers, mounts",
    "carnet.cli": "faces: FHIR API, patient portal, clinician portal, command line, shared links",
    "carnet.demo": "composition: demo data, the server runner",
    "carnet.export": "services: the domain's actions, each through the Context",
    "carnet.context": "the one way to a dossier: transaction, policy decision, audit",
    "carnet.audit": "the hash-chained audit log",
    "carnet.access": "the policy: who may do what (habilitation matrix)",
    "carnet.identity": "identifiers: INS/NIR, RPPS, professions",
    "carnet.db": "storage: tables and migrations; encrypted blobs",
}


def layers() -> list[list[str]]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".importlinter", encoding="utf-8")
    out = []
    for line in cfg["importlinter:contract:layers"]["layers"].split("\n"):
        mods = [m.strip() for m in re.split(r"[|:]", line) if m.strip()]
        if mods:
            out.append(mods)
    return out


def diagram() -> str:
    lines = ["```mermaid", "flowchart TB"]
    for i, mods in enumerate(layers()):
        title = TITLES.get(mods[0], "")
        names = " · ".join(m.removeprefix("carnet.") for m in mods)
        lines.append(f'    L{i}["<b>{names}</b><br/>{title}"]')
    for i in range(len(layers()) - 1):
        lines.append(f"    L{i} --> L{i + 1}")
    lines.append("```")
    return "\n".join(lines)


def block() -> str:
    return f"{BEGIN}\n{diagram()}\n{END}"


def current() -> str:
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[start:end]


def main() -> None:
    if "--write" in sys.argv:
        text = DOC.read_text(encoding="utf-8")
        DOC.write_text(text.replace(current(), block()), encoding="utf-8")
    else:
        print(diagram())


if __name__ == "__main__":
    main()
