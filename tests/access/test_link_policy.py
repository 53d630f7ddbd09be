"""The policy for whoever holds a SMART Health Link (issue 13 §2): a live link on an open dossier reads what the link's
service builds, never a hidden document; anything else gets nothing, and the refusal reveals nothing (no ``check``)."""

from __future__ import annotations

import datetime as dt

import pytest

from carnet.access.actors import Actor, ActorKind
from carnet.access.matrix import load_matrix
from carnet.access.policy import DocFacts, DossierFacts, LinkFacts, Standing, decide, link_state

NOW = dt.datetime(2026, 12, 4, 12, tzinfo=dt.UTC)
RECIPIENT = Actor(ActorKind.LINK_RECIPIENT, id="0190d4a6-0000-7000-8000-000000000001", display="Dr Ruiz")
MATRIX = load_matrix(None)


def _facts(**kw: object) -> LinkFacts:
    base: dict[str, object] = {"revoked": False, "expires_at": NOW + dt.timedelta(days=1), "opens": 1,
                               "max_opens": None, "passcode_failures": 0, "max_passcode_failures": 5}
    return LinkFacts(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(("facts", "state"), [
    (_facts(), "live"),
    (_facts(revoked=True), "revoked"),
    (_facts(expires_at=NOW), "expired"),
    (_facts(expires_at=None), "live"),
    (_facts(opens=3, max_opens=3), "live"),  # the third opening, in progress, is allowed
    (_facts(opens=4, max_opens=3), "used-up"),
    (_facts(passcode_failures=4), "live"),
    (_facts(passcode_failures=5), "locked"),
    (_facts(revoked=True, passcode_failures=5, opens=9, max_opens=1), "revoked"),
])
def test_a_links_state(facts: LinkFacts, state: str) -> None:
    assert link_state(facts, NOW) == state


def _decide(link: str | None, status: str = "active") -> object:
    dossier = DossierFacts(dossier_key="k", status=status, birth_date=dt.date(1980, 5, 17))
    return decide(RECIPIENT, dossier, Standing(link=link), NOW.date(), MATRIX)


def test_a_live_link_reads_with_hidden_documents_left_out() -> None:
    d = _decide("live")
    assert d.read and d.basis == "shared_link"  # type: ignore[attr-defined]
    assert not (d.manage_access or d.read_history or d.share_links or d.copy or d.check)  # type: ignore[attr-defined]
    v = d.visibility  # type: ignore[attr-defined]
    plain = DocFacts(class_code="10", type_code="11488-4", author_id="8x")
    assert v.allows(plain, NOW)
    for hidden in (DocFacts(class_code="10", type_code="11488-4", author_id="8x", masked=True),
                   DocFacts(class_code="10", type_code="11488-4", author_id="8x", invisible_patient=True),
                   DocFacts(class_code="10", type_code="11488-4", author_id="8x", invisible_representatives=True),
                   DocFacts(class_code="10", type_code="11488-4", author_id="8x", deleted=True)):
        assert not v.allows(hidden, NOW)


@pytest.mark.parametrize(("link", "status"), [(None, "active"), ("revoked", "active"), ("expired", "active"),
                                              ("used-up", "active"), ("locked", "active"), ("live", "closed")])
def test_anything_but_a_live_link_on_an_open_dossier_gets_nothing(link: str | None, status: str) -> None:
    d = _decide(link, status)
    assert not d.read and not d.check and d.visibility.nothing  # type: ignore[attr-defined]


def test_a_link_standing_gives_other_actors_nothing_more() -> None:
    dossier = DossierFacts(dossier_key="k", status="active", birth_date=dt.date(1980, 5, 17))
    for kind in (ActorKind.INSURER, ActorKind.OPERATOR, ActorKind.EMPLOYER):
        assert not decide(Actor(kind, id="x"), dossier, Standing(link="live"), NOW.date(), MATRIX).read
