"""Who read or wrote what: the dossier's access history read back from the audit chain (as FHIR ``AuditEvent``, as
the portal's History screen, in the copy), a professional's previous access, and the operators' review queue of
emergency and regulation accesses. Every reading here goes through the Context and is itself audited; the chain is
written by :mod:`carnet.audit.log`, never here."""
