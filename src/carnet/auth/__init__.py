"""Who is calling: Carnet's OAuth 2.0 side, which turns a request into an Actor and decides nothing else.

API clients (a practice's or a hospital's software, Carnet's own patient portal, an Assurance Maladie system) obtain
a short-lived access token at ``POST /oauth/token`` with::

    grant_type=client_credentials
    client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
    client_assertion=<a JWT signed with the client's private key>
    scope=system/DocumentReference.rs system/Patient.rs

as in SMART App Launch 2, "Backend Services" and "Client Authentication: Asymmetric"
(https://hl7.org/fhir/smart-app-launch/backend-services.html), on OAuth 2.0 client credentials (RFC 6749 §4.4) with
``private_key_jwt`` client authentication (RFC 7523 §2.2 and §3), carrying IHE IUA actor claims. The token endpoint
(:mod:`carnet.auth.web`) calls, in this order: :func:`carnet.auth.assertions.unverified_client_id` (which record
to load), :func:`carnet.auth.assertions.verify_client_assertion`, :func:`carnet.auth.scopes.negotiate_scopes`,
:func:`carnet.auth.access_tokens.issue_access_token`; then, on every API request,
:func:`carnet.auth.access_tokens.verify_access_token`, :func:`carnet.auth.access_tokens.access_token_actor` and
:func:`carnet.auth.scopes.scope_allows`.

One module per concept:

- :mod:`~carnet.auth.errors`: :class:`TokenError`, the OAuth refusal;
- :mod:`~carnet.auth.claims`: the actor claims (who acts, in which mode) and which client may make them;
- :mod:`~carnet.auth.assertions`: client assertions, verified (server side) and made (client side);
- :mod:`~carnet.auth.access_tokens`: access tokens, issued and verified;
- :mod:`~carnet.auth.keys`: the server's signing key;
- :mod:`~carnet.auth.scopes`: SMART scopes, negotiated and checked;
- :mod:`~carnet.auth.jwt`: strict reading of a JWT's parts (no signature check);
- :mod:`~carnet.auth.smart`: patients' apps (SMART standalone launch: authorization codes, refresh tokens, grants);
- :mod:`~carnet.auth.web`: the token endpoint, SMART discovery, and the bearer check that yields an Actor.

Only :mod:`~carnet.auth.smart` and :mod:`~carnet.auth.web` touch the database, and only auth's own tables (clients,
the jti replay cache, SMART codes and refresh tokens) and the professional directory
(``tests/auth/test_auth_reads_only_its_tables.py``): what auth needs to know of accounts and dossiers it asks the
caller for, as a function.
"""
