"""The patient's complete copy of their dossier (issue 4 §2 "The dossier itself"; DOMAIN.md: "The patient (heirs
after death) may ask for a complete copy"; the DMP's "copy on paper or CD").

:func:`carnet.export.copy.build_copy` writes one zip: a readable PDF booklet, a FHIR R4 ``Bundle`` of everything, the
documents' original bytes and a ``SHA256SUMS`` file. The FHIR operation is ``GET /fhir/Patient/{id}/$copy``.
"""

from carnet.export.copy import CopySummary, build_copy

__all__ = ["CopySummary", "build_copy"]
