"""Uptime: availability by time from the health rounds, incidents, MTBF / MTTR, SLA and error budget,
maintenance windows and zones. What other features call:

    uptime = app.extensions["centinela"].uptime          # an UptimeService (set by the uptime blueprint)
    uptime.calendar.is_in_maintenance(now, service="stripe")     # MaintenanceCalendar: mute inside windows
    uptime.calendar.windows_overlapping(start, end, service=None)
    uptime.calendar.create(parse_window_spec(body), created_by=key_id); uptime.calendar.list_windows()
    uptime.calendar.delete(window_id)
    uptime.incidents.open_incident(); uptime.incidents.page(before=None, limit=50)
    uptime.report(parse_period("30d", None, now))         # every figure of GET /api/monitoring/uptime

Modules: ``timeline`` (rounds folded into segments and incidents), ``availability`` (up, down,
unknown and maintenance time; MTBF / MTTR), ``sla`` (budget, burn rates, compliance),
``maintenance``, ``incidents``, ``zones``, ``periods``, ``report`` (JSON and the metric category).
"""
