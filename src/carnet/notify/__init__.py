"""Notifications to people (issue 4 §5): a transactional outbox written in the event's transaction
(:mod:`~carnet.notify.outbox`), the rules that turn audited events into messages (:mod:`~carnet.notify.rules`), the
channels that carry them (:mod:`~carnet.notify.channels`) and the worker that delivers them
(:mod:`~carnet.notify.worker`). Messages carry no health content: what kind of event, and a pointer to sign in.
See docs/NOTIFICATIONS.md."""
