"""People's accounts: invitation, activation, sign-in with a one-time code, reset (issue 4)."""
