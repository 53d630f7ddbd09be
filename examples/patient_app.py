"""A patient's own app reading their Carnet: SMART on FHIR standalone launch, end to end, with nothing but httpx.

Run ``carnet db upgrade && carnet demo`` once, then ``carnet serve``, then::

    python examples/patient_app.py --base http://127.0.0.1:8000 --client-id demo-patient-app \\
        --login 100103690200014 --password demo-carnet-2026 --mail-dir var/mail

What a real app does in a browser, this script does with httpx, playing both the app and the person:

1. discovery: ``/.well-known/smart-configuration`` gives the authorization and token endpoints;
2. the app makes a PKCE verifier and its S256 challenge, and sends the person to ``/oauth/authorize``;
3. Carnet asks the person to sign in: identifier and password, then the one-time code (read here from the newest
   message in the mail folder, where the demo server writes its emails);
4. the consent screen: the script answers "Allow" and Carnet sends the browser back to the app's redirect URI with a
   ``code`` (the app's callback is not needed: the script reads the code from the redirect);
5. the app exchanges the code and its PKCE verifier for an access token, the launch context ``patient`` and a
   refresh token (``offline_access``);
6. it reads the patient's DocumentReferences (MHD ITI-67) and one document's content (ITI-68, ``Binary``);
7. it refreshes: a new access token and a new refresh token (the old one is spent), and reads again.

Exit status 0 when every step succeeded. See docs/SMART.md.
"""

from __future__ import annotations

import argparse
import base64
import email
import hashlib
import html
import re
import secrets
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

DEMO_LOGIN = "100103690200014"  # Jeanne Lefèvre, the demo adult patient
DEMO_PASSWORD = "demo-carnet-2026"
DEMO_REDIRECT = "http://127.0.0.1:8765/callback"  # registered for demo-patient-app by `carnet demo`
SCOPE = "launch/patient openid fhirUser patient/*.rs offline_access"
FHIR_JSON = "application/fhir+json"


class StepFailed(Exception):
    pass


def step(n: int, name: str, r: httpx.Response, expect: int, detail: str = "") -> httpx.Response:
    ok = r.status_code == expect
    print(f"{n}. {name}: {r.status_code} {'OK' if ok else 'FAILED'}{' - ' + detail if detail and ok else ''}")
    if not ok:
        print(r.text[:2000], file=sys.stderr)
        raise StepFailed(name)
    return r


class Browser:
    """Just enough of a browser: follows nothing by itself, keeps the portal's cookies.

    Cookies are kept by hand because the portal marks them ``Secure`` and httpx (like Python's cookie jar) never
    sends a Secure cookie over plain http, even to 127.0.0.1, where browsers do."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.cookies: dict[str, str] = {}

    def _send(self, method: str, url: str, **kw: Any) -> httpx.Response:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        r = self.http.request(method, url, headers=headers, follow_redirects=False, **kw)
        for header in r.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0].strip().strip('"')
            if value and "max-age=0" not in header.lower():
                self.cookies[name.strip()] = value
            else:
                self.cookies.pop(name.strip(), None)
        return r

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self._send("GET", url, **kw)

    def post(self, url: str, data: dict[str, str]) -> httpx.Response:
        return self._send("POST", url, data=data)


def hidden_fields(page: str) -> dict[str, str]:
    """The hidden inputs of the first form in the page's main part (CSRF token, the authorization request)."""
    fields: dict[str, str] = {}
    main = page[page.find("<main"):]  # the header's own forms (language, sign-out) are not the page's form
    form = main[:main.find("</form>")] if "</form>" in main else main
    for tag in re.findall(r"<input[^>]*>", form):
        kind = re.search(r'type="([^"]*)"', tag)
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if kind and kind.group(1) == "hidden" and name and name.group(1) not in fields:
            fields[name.group(1)] = html.unescape(value.group(1)) if value else ""
    return fields


def newest_code(mail_dir: Path, since: float, timeout: float = 15.0) -> str:
    """The six-digit code of the newest message written to ``mail_dir`` after ``since``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = sorted((p for p in mail_dir.glob("*.eml") if p.stat().st_mtime >= since - 1),
                          key=lambda p: p.stat().st_mtime_ns)
        if messages:
            body = email.message_from_bytes(messages[-1].read_bytes()).get_payload(decode=True)
            found = re.search(rb"\b(\d{6})\b", body if isinstance(body, bytes) else b"")
            if found:
                return found.group(1).decode()
        time.sleep(0.2)
    raise StepFailed(f"no one-time code arrived in {mail_dir}")


def launch(base: str, client_id: str, login: str, password: str, mail_dir: Path, redirect_uri: str) -> None:
    with httpx.Client(timeout=30) as http:
        browser = Browser(http)
        conf = step(1, "discovery (smart-configuration)", http.get(f"{base}/.well-known/smart-configuration"),
                    200).json()
        authorize_url, token_url = conf["authorization_endpoint"], conf["token_endpoint"]

        verifier = secrets.token_urlsafe(64)  # RFC 7636: 43 to 128 characters
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(16)
        params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": SCOPE,
                  "state": state, "aud": f"{base}/fhir", "code_challenge": challenge,
                  "code_challenge_method": "S256"}
        r = step(2, "authorize (not signed in yet: to the sign-in page)", browser.get(authorize_url, params=params),
                 303)
        sign_in = urljoin(base, r.headers["location"])
        nxt = parse_qs(urlsplit(sign_in).query)["next"][0]

        started = time.time()
        r = step(3, "sign in (identifier and password)", browser.post(
            f"{base}/portal/sign-in", {"login": login, "password": password, "next": nxt}), 303)
        code_page = browser.get(urljoin(base, r.headers["location"]))
        otp = newest_code(mail_dir, started)
        r = step(4, "one-time code (read from the mail folder)", browser.post(
            f"{base}/portal/code", {**hidden_fields(code_page.text), "code": otp}), 303)
        where = urljoin(base, r.headers["location"])
        if urlsplit(where).path == "/portal/choose":  # an account acting on several dossiers: take the first
            choose = browser.get(where)
            r = browser.post(f"{base}/portal/choose", hidden_fields(choose.text))
            where = urljoin(base, r.headers["location"])

        consent = step(5, "consent screen", browser.get(where), 200)
        answer = {**hidden_fields(consent.text), "decision": "allow"}
        r = step(6, "allow (back to the app with a code)", browser.post(f"{base}/oauth/authorize", answer), 303)
        back = urlsplit(r.headers["location"])
        query = parse_qs(back.query)
        if f"{back.scheme}://{back.netloc}{back.path}" != redirect_uri or query.get("state") != [state]:
            raise StepFailed("the redirect does not go back to the app with its state")
        code = query["code"][0]

        r = step(7, "token (authorization_code + PKCE)", http.post(token_url, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "client_id": client_id,
            "code_verifier": verifier}), 200)
        tokens = r.json()
        patient = tokens["patient"]
        print(f"   patient {patient}; scope: {tokens['scope']}; expires in {tokens['expires_in']} s")
        api = {"Authorization": f"Bearer {tokens['access_token']}", "Accept": FHIR_JSON}

        r = step(8, "find documents (ITI-67)", http.get(f"{base}/fhir/DocumentReference",
                                                         params={"patient": patient}, headers=api), 200)
        entries = r.json().get("entry", [])
        print(f"   documents: {len(entries)}")
        if not entries:
            raise StepFailed("the demo patient has no document")
        doc = entries[0]["resource"]
        title = doc["content"][0]["attachment"].get("title", "")
        r = step(9, "retrieve a document (ITI-68)", http.get(f"{base}/fhir/Binary/{doc['id']}",
                                                             headers={**api, "Accept": "*/*"}), 200)
        print(f"   '{title}': {len(r.content)} bytes, sha256 {hashlib.sha256(r.content).hexdigest()[:16]}…")

        r = step(10, "refresh (a new refresh token each time)", http.post(token_url, data={
            "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id}), 200)
        fresh = r.json()
        if fresh["refresh_token"] == tokens["refresh_token"]:
            raise StepFailed("the refresh token was not rotated")
        api = {"Authorization": f"Bearer {fresh['access_token']}", "Accept": FHIR_JSON}
        step(11, "find documents again with the new token", http.get(
            f"{base}/fhir/DocumentReference", params={"patient": patient}, headers=api), 200)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:8000", help="Carnet's base URL (its CARNET_BASE_URL)")
    parser.add_argument("--client-id", default="demo-patient-app", help="the patient app's registered client id")
    parser.add_argument("--redirect-uri", default=DEMO_REDIRECT, help="a redirect URI registered for the app")
    parser.add_argument("--login", default=DEMO_LOGIN, help="the patient's sign-in identifier")
    parser.add_argument("--password", default=DEMO_PASSWORD, help="the patient's password")
    parser.add_argument("--mail-dir", "--code-from", dest="mail_dir", default=Path("var/mail"), type=Path,
                        help="where the server writes its emails (the one-time code is read there)")
    args = parser.parse_args()
    try:
        launch(args.base.rstrip("/"), args.client_id, args.login, args.password, args.mail_dir, args.redirect_uri)
    except StepFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"FAILED: cannot reach {args.base}: {exc}", file=sys.stderr)
        return 1
    print("patient app complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
