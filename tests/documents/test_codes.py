"""The document type tables of DOMAIN.md agree with each other."""

from __future__ import annotations

from carnet.documents import codes


def test_every_known_type_has_a_class_and_a_french_label() -> None:
    assert set(codes.TYPE_LABELS) == set(codes.TYPE_CLASS)
    assert set(codes.TYPE_CLASS.values()) <= set(codes.CLASSES)
    assert all(label.strip() for label in codes.TYPE_LABELS.values())
