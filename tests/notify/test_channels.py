"""The channels on their own: a pluggable SMS gateway, rendering, masked addresses, SMTP answers mapped to failures."""

from __future__ import annotations

import smtplib
import socket
from pathlib import Path
from typing import Any

import pytest

from carnet.config import Settings
from carnet.notify.channels import PermanentFailure, TransientFailure, channels_for, ehlo_name
from carnet.notify.outbox import mask_address, render
from tests.conftest import SmtpInbox

SENT: list[tuple[str, str, str]] = []


class RecordingGateway:
    def send(self, phone: str, text: str, message_id: str) -> None:
        if phone == "+33600000000":
            raise PermanentFailure("number refused")
        SENT.append((phone, text, message_id))


def make_gateway(settings: Settings) -> RecordingGateway:
    return RecordingGateway()


def settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(var_dir=tmp_path, database_url="sqlite://", base_url="https://carnet.example", **kw)


def test_a_real_sms_gateway_is_plugged_by_its_factory(tmp_path: Path) -> None:
    channels = channels_for(settings(tmp_path, sms_gateway="tests.notify.test_channels:make_gateway"))
    channels.send("sms", "+33612345678", "ignored", "Carnet : test", "mid-1")
    assert SENT[-1] == ("+33612345678", "Carnet : test", "mid-1")
    with pytest.raises(PermanentFailure):
        channels.send("sms", "+33600000000", "", "x", "mid-2")
    assert not (tmp_path / "sms").exists()


def test_a_malformed_gateway_setting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        channels_for(settings(tmp_path, sms_gateway="no-colon"))


def test_an_unknown_channel_fails_permanently(tmp_path: Path) -> None:
    with pytest.raises(PermanentFailure):
        channels_for(settings(tmp_path)).send("pigeon", "x", "s", "t", "m")


@pytest.mark.parametrize("smtp_server", [{"fail_first": 1}], indirect=True)
def test_smtp_answers_become_transient_then_success(tmp_path: Path, smtp_server: SmtpInbox) -> None:
    channels = channels_for(settings(tmp_path, smtp_host=smtp_server.host, smtp_port=smtp_server.port))
    with pytest.raises(TransientFailure, match="smtp 451"):
        channels.send("email", "code@example.org", "Carnet", "Votre code : 123456", "mid-3")
    channels.send("email", "code@example.org", "Carnet", "Votre code : 123456", "mid-3")
    (received,) = smtp_server.to("code@example.org")
    assert received["Message-ID"] == "<mid-3@carnet.invalid>" and "123456" in received.get_content()


def test_smtp_names_itself_by_the_base_url_host_without_a_dns_lookup(
        tmp_path: Path, smtp_server: SmtpInbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-time code leaves at once: smtplib's default EHLO name is socket.getfqdn(), a reverse DNS lookup that a
    slow or cold resolver stalls for seconds (the code email came after more than 15 s once, right after a restart)."""
    class NoLookup:  # smtplib's view of the socket module, without getfqdn (the test server keeps the real one)
        def __getattr__(self, name: str) -> Any:
            if name == "getfqdn":
                raise AssertionError("socket.getfqdn called: a DNS lookup before every email")
            return getattr(socket, name)
    monkeypatch.setattr(smtplib, "socket", NoLookup())
    channels = channels_for(settings(tmp_path, smtp_host=smtp_server.host, smtp_port=smtp_server.port))
    channels.send("email", "code@example.org", "Carnet", "Votre code : 123456", "mid-ehlo")
    assert smtp_server.ehlo_names == ["carnet.example"]
    assert ehlo_name(Settings(var_dir=tmp_path, base_url="http://127.0.0.1:8000")) == "[127.0.0.1]"
    assert ehlo_name(Settings(var_dir=tmp_path, base_url="http://[::1]:8000")) == "[IPv6:::1]"


def test_templates_render_in_the_account_language_and_fall_back_to_french(tmp_path: Path) -> None:
    s = settings(tmp_path)
    fr = render("access_emergency", "fr", {}, s)
    en = render("access_emergency", "en", {}, s)
    de = render("access_emergency", "de", {}, s)
    assert fr.subject.startswith("Carnet : accès") and en.subject.startswith("Carnet: emergency")
    assert de == fr
    assert "https://carnet.example/portal/" in fr.text and "https://carnet.example/portal/" in fr.sms
    with pytest.raises(KeyError):
        render("../secret", "fr", {}, s)
    assert "ABC-123" in render("sign_in_code", "en", {"code": "ABC-123"}, s).sms
    assert "R42" not in render("activation", "fr", {"code": "C", "login": "R42"}, s, "email").text
    assert "R42" in render("activation", "fr", {"code": "C", "login": "R42"}, s, "post").text


def test_every_template_renders_in_both_languages(tmp_path: Path) -> None:
    from importlib import resources

    s = settings(tmp_path)
    names = {p.name.split(".")[0] for p in resources.files("carnet.notify").joinpath("templates").iterdir()}
    assert len(names) >= 15
    for name in names:
        for lang in ("fr", "en"):
            r = render(name, lang, {"code": "X", "login": "Y"}, s, "post")
            assert r.subject and r.text and r.sms and "$" not in r.text + r.sms + r.subject


def test_addresses_are_masked_for_the_operator() -> None:
    assert mask_address("email", "alix.teste@example.org") == "a***@example.org"
    assert mask_address("sms", "+33612345678") == "+33******78"
    assert "Rue" not in mask_address("post", "12 Rue des Tests")
