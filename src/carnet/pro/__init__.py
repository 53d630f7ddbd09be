"""The clinician portal (issue 3 §1): OpenID Connect sign-in, finding a patient, the dossier, documents, break the
glass, and the operators' review queue of emergency accesses. See docs/CLINICIAN_PORTAL.md."""
