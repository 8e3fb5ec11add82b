"""Notification delivery: channels (webhook, Slack, PagerDuty, Sentry, e-mail, Apprise), routing, and the outbox.

The alerting engine builds a ``model.Notification`` and calls ``monitoring.outbox.enqueue(conn,
notification)`` inside its own store transaction; the leader's ``notify_delivery`` job delivers.
"""
