"""The alerting engine: rules over the exported figures, the alert lifecycle (inactive →
pending → firing → resolved), grouping, inhibition, silences, maintenance muting,
acknowledgement and escalation. It decides; monitoring.notify delivers (through the outbox,
in the same transaction as each decision).

What other features call: ``monitoring.alerting`` (an ``engine.AlertEngine``) is built by
the alerts blueprint's install(); its ``evaluate()`` is the leader's ``alert_evaluation``
job, and ``trigger`` / ``acknowledge`` / ``resolve`` are the admin actions.
"""
