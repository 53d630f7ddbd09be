"""The schema keeps ../shared/SCALE.md's rules, so that it distributes by dossier without a rewrite."""

from __future__ import annotations

from sqlalchemy import ForeignKeyConstraint, UniqueConstraint

from carnet.db.tables import metadata

REFERENCE_TABLES = {"practitioner", "client"}
REFERENCE_TABLES |= {"master_key"}  # the master keys' check values: a handful of rows every node reads at start
REFERENCE_TABLES |= {"audit_archive"}  # the archived audit months: a dozen rows a year
LOOKUP_TABLES = {"token_jti"}  # a client assertion's jti (replay): insert-only, by jti
LOOKUP_TABLES |= {"ins_lookup", "creation_objection", "patient_index", "resource_locator", "document_identifier"}
LOOKUP_TABLES |= {"account_login"}  # a sign-in identifier -> its account
LOOKUP_TABLES |= {"pro_notice_by_recipient", "trend_alert_by_recipient"}  # a professional's inbox -> notices, alerts
LOOKUP_TABLES |= {"shared_link_lookup"}  # the hash of a SMART Health Link's public id -> its dossier
LOOKUP_TABLES |= {"prescription_number", "prescription_by_pharmacy"}  # a prescription by number; a pharmacy's inbox
LOOKUP_TABLES |= {"teleconsult_by_clinician"}  # a professional's teleconsultations -> their dossiers
# People's accounts, their codes, sessions and app grants: distributed by account, by grant (refresh tokens) or by the
# hash of their secret (carnet/db/distribution.toml); none holds health data, and none is pointed at by a dossier table.
ACCOUNT_TABLES = {"account", "account_code", "web_session", "oauth_code", "refresh_token", "pro_session"}
# Counters every node shares (rate limits, sign-in failures): not dossier data; each row is found by its own key, a
# keyed hash, so under Citus each is distributed by that key, in a co-location group of its own (docs/SCALE.md).
COUNTER_TABLES = {"rate_limit", "sign_in_failure"}
DOSSIER_TABLES = set(metadata.tables) - REFERENCE_TABLES - LOOKUP_TABLES - ACCOUNT_TABLES - COUNTER_TABLES


def test_every_table_is_classified() -> None:
    assert DOSSIER_TABLES == {"dossier", "representative", "access_grant", "document", "document_token",
                              "submission_set", "audit_chain", "audit", "account_dossier", "outbox", "contact",
                              "professional_seen", "task", "clinical_item", "claim_line", "access_review",
                              "pro_notice", "shared_link", "access_code", "access_code_guard",
                              "prescription", "prescription_line", "medication_dispense",
                              "measurement", "measure_source", "measure_series", "measure_import",
                              "trend_dossier", "trend_episode",
                              "teleconsultation", "teleconsult_signal"}


def test_account_tables_are_keyed_by_their_account_or_secret() -> None:
    for name in ACCOUNT_TABLES:
        keys = set(metadata.tables[name].primary_key.columns.keys())
        assert keys & {"account_id", "session_hash", "code_hash", "token_hash"}, name


def test_counter_tables_are_keyed_by_their_hash_alone_and_point_nowhere() -> None:
    for name in COUNTER_TABLES:
        table = metadata.tables[name]
        assert list(table.primary_key.columns.keys()) == ["key"], name
        assert not table.foreign_keys and "dossier_key" not in table.c, name
        assert not any(index.unique for index in table.indexes), name


def test_every_dossier_table_carries_a_not_null_dossier_key_in_its_primary_key() -> None:
    for name in DOSSIER_TABLES:
        table = metadata.tables[name]
        assert "dossier_key" in table.c, name
        assert not table.c.dossier_key.nullable, name
        assert "dossier_key" in table.primary_key.columns, name


def test_every_unique_constraint_and_index_of_a_dossier_table_includes_the_key() -> None:
    for name in DOSSIER_TABLES:
        table = metadata.tables[name]
        for constraint in table.constraints:
            if isinstance(constraint, UniqueConstraint):
                assert "dossier_key" in constraint.columns, (name, constraint.name)
        for index in table.indexes:
            if index.unique:
                assert "dossier_key" in index.columns, (name, index.name)


def test_foreign_keys_between_dossier_tables_include_the_key_and_reference_tables_never_point_at_them() -> None:
    for name, table in metadata.tables.items():
        for fk in (c for c in table.constraints if isinstance(c, ForeignKeyConstraint)):
            target = fk.referred_table.name
            if name in DOSSIER_TABLES and target in DOSSIER_TABLES:
                assert "dossier_key" in [c.name for c in fk.columns], (name, target)
            if name in REFERENCE_TABLES | ACCOUNT_TABLES:
                assert target not in DOSSIER_TABLES, (name, target)


def test_ids_are_not_database_sequences() -> None:
    for table in metadata.tables.values():
        for column in table.primary_key.columns:
            assert column.autoincrement is not True, (table.name, column.name)
            assert column.server_default is None, (table.name, column.name)
