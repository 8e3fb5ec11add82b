// Centinela dashboard: fetches the page's feed every few seconds and redraws the figures in place.
// No library and no network beyond this site: charts are SVG drawn here. Every status is said in
// words (and an icon), never by colour alone. The key is never in a URL: the feed is read with the
// page's HttpOnly session cookie, which the browser sends by itself.
(function () {
  "use strict";

  var body = document.body;
  var FEED = body.getAttribute("data-feed");
  var REFRESH_MS = Math.max(2, Number(body.getAttribute("data-refresh-seconds")) || 5) * 1000;
  var SVG = "http://www.w3.org/2000/svg";
  var STATUS = {
    healthy: { word: "Healthy", icon: "✓" },
    degraded: { word: "Degraded", icon: "!" },
    unhealthy: { word: "Unhealthy", icon: "✕" },
    unknown: { word: "Unknown", icon: "?" }
  };
  var BREAKER = { closed: "Closed", open: "Open", half_open: "Half-open" };
  var SEVERITY_ORDER = ["critical", "high", "medium", "low", "info"];

  var state = { range: "1h", doc: null, lastOk: null, timer: null, inFlight: false, service: "" };

  // --- small DOM helpers -----------------------------------------------------------------------

  function h(tag, attrs) {
    var node = document.createElement(tag);
    setAttrs(node, attrs);
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function s(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    setAttrs(node, attrs);
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function setAttrs(node, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) return;
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    });
  }

  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    node.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
  }

  function fill(id, content) {
    var node = document.getElementById(id);
    if (!node) return;
    node.replaceChildren();
    append(node, content);
  }

  function setText(id, text) {
    var node = document.getElementById(id);
    if (node && node.textContent !== text) node.textContent = text;
  }

  // --- formatting ------------------------------------------------------------------------------

  var numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

  function fmtNumber(value) { return value === null || value === undefined ? "—" : numberFormat.format(value); }

  // "1 payment", "2 payments": the count and its noun in the number it needs.
  function plural(count, one, many) {
    return fmtNumber(count) + " " + (count === 1 ? one : (many || one + "s"));
  }

  // "14.4×", "1,000×": a burn rate as people read it.
  function fmtRate(value) { return value === null || value === undefined ? "—" : numberFormat.format(value) + "×"; }

  function fmtMs(value) {
    if (value === null || value === undefined) return "—";
    if (value >= 1000) return numberFormat.format(value / 1000) + " s";
    return numberFormat.format(value < 10 ? Math.round(value * 10) / 10 : Math.round(value)) + " ms";
  }

  function fmtPercent(value, digits) {
    if (value === null || value === undefined) return "—";
    return value.toFixed(digits === undefined ? 2 : digits) + " %";
  }

  function fmtShare(value) { return value === null || value === undefined ? "—" : fmtPercent(value * 100, 2); }

  function fmtTime(iso) {
    if (!iso) return "never";
    var when = new Date(iso);
    return when.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function fmtClock(iso) {
    return new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  }

  function fmtDateTime(iso) {
    if (!iso) return "—";
    return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  function fmtMoney(amount, currency) {
    // The server gives the exact decimal string; Intl only adds the symbol and grouping where it is safe.
    var number = Number(amount);
    if (!isFinite(number) || amount.replace(/[^0-9]/g, "").length > 15) return amount + " " + currency;
    var digits = (amount.split(".")[1] || "").length;
    try {
      return new Intl.NumberFormat(undefined, {
        style: "currency", currency: currency, minimumFractionDigits: digits, maximumFractionDigits: digits
      }).format(number);
    } catch (e) {
      return amount + " " + currency;
    }
  }

  function unavailable(section) { return section && section.available === false; }

  function statusBadge(status) {
    var known = STATUS[status] || { word: status || "Unknown", icon: "?" };
    return h("span", { class: "badge status-" + (STATUS[status] ? status : "unknown") },
      h("span", { class: "icon", "aria-hidden": "true" }, known.icon), " " + known.word);
  }

  function note(text) { return h("p", { class: "empty" }, text); }

  // --- sections --------------------------------------------------------------------------------

  function renderBanner(doc) {
    var status = doc.status || {};
    // A firing alert worse than the health status (status.alert) decides what the banner shows.
    var alert = status.alert;
    var shown = alert ? alert.status : status.status;
    var known = STATUS[shown] || STATUS.unknown;
    var banner = document.getElementById("banner");
    var cls = "banner status-" + (STATUS[shown] ? shown : "unknown");
    if (banner.className !== cls) banner.className = cls;
    var icon = banner.querySelector(".icon");
    if (icon.textContent !== known.icon) icon.textContent = known.icon;
    setText("status-word", alert ? alert.word : (status.word || known.word));
    var summary = (alert ? alert.summary + ". Health: " : "") + (status.summary || "");
    var incidents = doc.incidents || {};
    if (incidents.open) summary += " Incident open since " + fmtDateTime(incidents.open.start) + ".";
    var counts = doc.alerts && doc.alerts.counts;
    if (counts && counts.firing) {
      var worst = SEVERITY_ORDER.filter(function (sev) { return (counts.firingBySeverity || {})[sev]; })[0];
      summary += " " + counts.firing + " alert" + (counts.firing === 1 ? "" : "s") + " firing" + (worst ? " (most severe: " + worst + ")" : "") + ".";
    }
    setText("status-summary", summary);
    setText("status-score", status.health_score === null || status.health_score === undefined
      ? "Health score: not yet measured" : "Health score " + status.health_score + " / 100");
  }

  function renderServices(services) {
    var rows = (services || []).map(function (service) {
      var circuit = service.circuit;
      var breaker = circuit
        ? h("span", { class: "breaker breaker-" + circuit.state },
            (BREAKER[circuit.state] || circuit.state) +
            (circuit.state === "open" && circuit.nextTrialIn !== null ? " · next trial in " + Math.round(circuit.nextTrialIn) + " s" : "") +
            (circuit.consecutiveFailures ? " · " + plural(circuit.consecutiveFailures, "failure") : ""))
        : h("span", { class: "muted" }, "none");
      return h("tr", { "data-service": service.name },
        h("th", { scope: "row" }, service.name, service.critical ? h("span", { class: "tag" }, "critical") : null),
        h("td", { "data-label": "Status" }, h("span", null, statusBadge(service.status),
          service.error ? h("span", { class: "error-text" }, " " + service.error) : null)),
        h("td", { "data-label": "Circuit breaker" }, breaker),
        h("td", { class: "num", "data-label": "Response" }, fmtMs(service.responseTime)),
        h("td", { class: "num", "data-label": "Available (24 h)" }, service.availability24h === null ||
          service.availability24h === undefined ? "—" : [fmtPercent(service.availability24h * 100, 2),
            h("span", { class: "muted checks" }, " of " + plural(service.checks24h || 0, "check"))]),
        h("td", { "data-label": "Checked" }, fmtTime(service.checkedAt)));
    });
    if (!rows.length) rows = [h("tr", null, h("td", { colspan: 6 }, "No dependency is checked yet."))];
    fill("services-table-body", rows);
  }

  function kpi(label, value, detail, id) {
    return h("div", { class: "kpi", id: id || null },
      h("p", { class: "kpi-label" }, label),
      h("p", { class: "kpi-value" }, value),
      detail ? h("p", { class: "kpi-detail" }, detail) : null);
  }

  // null: the figures do not rest on enough of the window (UPTIME_MIN_COVERAGE) for a verdict.
  function yesNo(value) { return value === null || value === undefined ? "not enough data" : value ? "met" : "missed"; }

  // What the uptime figure rests on, said beside it when it is too little to judge.
  function coverageNote(coverage) {
    if (!coverage || coverage.enough) return null;
    return h("p", { class: "kpi-coverage" }, (coverage.summary || "not measured yet") +
      " (a verdict needs " + fmtPercent(coverage.minimum, coverage.minimum < 1 ? 1 : 0) + " of the window)");
  }

  // "Up for" says only what is true now: up since when, or down since the incident began, or not measured.
  function currentState(uptime, incidents) {
    var state = uptime.uptime.state;
    if (state === "up") return "Up for " + (uptime.uptime.formatted || "—");
    var open = incidents && !unavailable(incidents) && incidents.open;
    if (state === "down" && open) return "Down for " + open.duration + " (incident open)";
    return "Not measured now";
  }

  function renderUptime(uptime, incidents) {
    if (!uptime || unavailable(uptime)) {
      fill("uptime-body", note((uptime && uptime.reason) || "Uptime figures are not available."));
      return;
    }
    var sla = uptime.sla || {};
    var budget = sla.errorBudget || {};
    var period = (uptime.window && uptime.window.label) || "";
    var remaining = budget.remainingPercentage;
    var bar = h("div", { class: "meter", role: "meter", "aria-valuemin": 0, "aria-valuemax": 100,
      "aria-valuenow": remaining === null || remaining === undefined ? 0 : Math.max(0, Math.min(100, remaining)),
      "aria-label": "Error budget remaining" });
    var fillBar = h("div", { class: "meter-fill" + (budget.exhausted ? " exhausted" : "") });
    fillBar.style.width = (remaining === null || remaining === undefined ? 0 : Math.max(0, Math.min(100, remaining))) + "%";
    bar.appendChild(fillBar);
    var firing = (sla.burnRateAlertsFiring || []).map(function (alert) {
      // The rate it burns at now against the sustainable 1×, and the alert's own threshold.
      return h("li", null, "Error budget burning at " + fmtRate(alert.longRate) + " the sustainable rate over " +
        alert.longWindow + " (" + fmtRate(alert.shortRate) + " over " + alert.shortWindow + "; alert at " +
        fmtRate(alert.threshold) + ")");
    });
    var coverage = uptime.uptime.coverage || uptime.coverage || {};
    var judged = coverage.enough !== false;
    var figure = function (text) { return judged ? text : h("span", { class: "insufficient", title: coverage.summary }, text); };
    var uptimeKpi = kpi("Uptime (" + period + ")", figure(fmtPercent(uptime.uptime.percentage, 3)),
      currentState(uptime, incidents) + "; SLA target " + sla.target + " % " + yesNo((sla.compliance || {}).uptime), "kpi-uptime");
    var budgetKpi = kpi("Error budget left", figure(fmtPercent(remaining, 1)),
      (budget.exhausted ? "Exhausted: " : "") + fmtNumber(budget.consumedMinutes) + " of " + fmtNumber(budget.allowedMinutes) +
        " min used", "kpi-budget");
    if (!judged) {
      uptimeKpi.classList.add("low-coverage");
      uptimeKpi.appendChild(coverageNote(coverage));
      budgetKpi.classList.add("low-coverage");
    }
    fill("uptime-body", [
      uptimeKpi,
      budgetKpi,
      h("div", { class: "kpi wide-kpi" }, bar),
      kpi("Error-rate objective", fmtShare((sla.errorRate || {}).share),
        "at most " + fmtShare((sla.errorRate || {}).threshold) + ": " + yesNo((sla.compliance || {}).errorRate)),
      firing.length ? h("ul", { class: "warnings" }, firing) : null,
      (uptime.maintenance || []).length ? h("p", { class: "muted" }, "Maintenance in progress.") : null
    ]);
  }

  function renderIncidents(incidents) {
    if (!incidents || unavailable(incidents)) {
      fill("incidents-body", note((incidents && incidents.reason) || "Incidents are not available."));
      return;
    }
    var recent = incidents.recent || [];
    if (!recent.length) {
      fill("incidents-body", note("No incident in the uptime window."));
      return;
    }
    fill("incidents-body", h("ul", { class: "list" }, recent.map(function (incident) {
      var open = incident.status === "open";
      return h("li", { class: open ? "incident open" : "incident" },
        h("span", { class: "badge " + (open ? "status-unhealthy" : "status-healthy") },
          h("span", { class: "icon", "aria-hidden": "true" }, open ? "✕" : "✓"), open ? " Open" : " Resolved"),
        " " + fmtDateTime(incident.start) + " · " + incident.duration,
        h("br"), h("span", { class: "muted" }, incident.cause || ""));
    })));
  }

  function renderAlerts(alerts) {
    if (!alerts || unavailable(alerts)) {
      fill("alerts-body", note((alerts && alerts.reason) || "Alerts are not available."));
      return;
    }
    var active = alerts.active || [];
    if (!active.length) {
      fill("alerts-body", note("No active alert."));
      return;
    }
    fill("alerts-body", h("ul", { class: "list", id: "alerts-list" }, active.map(function (alert) {
      var severity = alert.severity || "info";
      var state = alert.state === "pending" ? "Pending" : "Firing";
      var since = alert.firedAt || alert.activeAt;
      var flags = [];
      if (alert.acknowledged) flags.push("acknowledged by " + (alert.acknowledged.by || "someone"));
      if (alert.muted) flags.push("muted (" + alert.muted.by + ")");
      if (alert.escalation && alert.escalation.escalatedAt) flags.push("escalated");
      return h("li", { class: "alert", "data-severity": severity },
        h("span", { class: "badge severity-" + severity }, severity.charAt(0).toUpperCase() + severity.slice(1)),
        " ", h("strong", null, alert.name || "alert"), " · " + state,
        since ? " since " + fmtDateTime(since) : "",
        flags.length ? " · " + flags.join(", ") : "",
        alert.summary && alert.summary !== alert.name ? [h("br"), h("span", { class: "muted" }, alert.summary)] : null);
    })));
  }

  function renderPerformance(performance) {
    if (!performance || unavailable(performance)) {
      fill("performance-body", note((performance && performance.reason) || "Request figures are not available."));
      return;
    }
    fill("performance-body", [
      kpi("Latency p50 / p95 / p99", fmtMs(performance["api.response_time.p50"]) + " / " + fmtMs(performance["api.response_time.p95"]) +
        " / " + fmtMs(performance["api.response_time.p99"]), null, "kpi-latency"),
      kpi("Requests", fmtNumber(performance["requests.count"]), fmtNumber(performance["requests.per_minute"]) + " per minute", "kpi-requests"),
      kpi("5xx responses", fmtNumber(performance["errors.count"]), fmtShare(performance["errors.share"]) + " of requests", "kpi-errors")
    ]);
  }

  function renderBusiness(business) {
    if (!business || unavailable(business)) {
      fill("business-body", note((business && business.reason) || "Business figures are not available."));
      return;
    }
    var revenue = business.revenue || [];
    var users = business["users.active"] || {};
    var tickets = business["tickets.operations"] || {};
    var ticketRows = Object.keys(tickets).filter(function (op) { return tickets[op].operations; }).map(function (op) {
      return h("tr", null, h("th", { scope: "row" }, op),
        h("td", { class: "num", "data-label": "Operations" }, fmtNumber(tickets[op].operations)),
        h("td", { class: "num", "data-label": "Tickets" }, fmtNumber(tickets[op].tickets)));
    });
    fill("business-body", [
      h("div", { class: "kpis" },
        kpi("Payment success", fmtPercent(business["payments.success_rate"], 2),
          fmtNumber(business["payments.succeeded"]) + " succeeded, " + fmtNumber(business["payments.failed"]) + " failed", "kpi-payment-success"),
        kpi("Revenue", revenue.length ? revenue.map(function (r) { return fmtMoney(r.amount, r.currency); }).join(" · ") : "none yet",
          revenue.length ? revenue.map(function (r) { return plural(r.payments, "payment") + " in " + r.currency; }).join(", ") : null, "kpi-revenue"),
        kpi("Active users", fmtNumber(users["1h"]), "5 min " + fmtNumber(users["5m"]) + " · 24 h " + fmtNumber(users["24h"]), "kpi-users")),
      ticketRows.length
        ? h("div", { class: "table-wrap" }, h("table", { id: "tickets-table", class: "stack" },
            h("caption", null, "Ticket operations today"),
            h("thead", null, h("tr", null, h("th", { scope: "col" }, "Operation"), h("th", { scope: "col" }, "Operations"),
              h("th", { scope: "col" }, "Tickets"))),
            h("tbody", null, ticketRows)))
        : note("No ticket operation today.")
    ]);
  }

  function renderErrors(errors) {
    if (!errors || unavailable(errors)) {
      fill("errors-body", note((errors && errors.reason) || "Error figures are not available."));
      return;
    }
    var groups = errors.groups || [];
    var summary = h("p", null, plural(errors["errors.count"], "unhandled exception") + " in 24 h (" +
      fmtNumber(errors["errors.rate"]) + " per minute).");
    if (!groups.length) { fill("errors-body", [summary, note("No error group in 24 h.")]); return; }
    fill("errors-body", [summary, h("div", { class: "table-wrap" }, h("table", { class: "stack" },
      h("caption", { class: "visually-hidden" }, "Busiest error groups"),
      h("thead", null, h("tr", null, h("th", { scope: "col" }, "Error"), h("th", { scope: "col" }, "Where"),
        h("th", { scope: "col" }, "In 24 h"), h("th", { scope: "col" }, "Last seen"))),
      h("tbody", null, groups.map(function (group) {
        return h("tr", null,
          h("th", { scope: "row" }, group.type, h("br"), h("span", { class: "muted" }, group.message)),
          h("td", { "data-label": "Where" }, group.route || group.where),
          h("td", { class: "num", "data-label": "In 24 h" },
            fmtNumber(group.countInWindow !== undefined ? group.countInWindow : group.count)),
          h("td", { "data-label": "Last seen" }, fmtDateTime(group.lastSeen)));
      }))))]);
  }

  // --- charts ----------------------------------------------------------------------------------

  function niceMax(value) {
    if (!(value > 0)) return 1;
    var power = Math.pow(10, Math.floor(Math.log10(value)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * power >= value) return steps[i] * power;
    return 10 * power;
  }

  // cfg: {title, kind: "line" | "bar", points, series: [{name, cls, values, latest}], format, emptyText, latestLabel}
  // ``latest`` is each series' value in the last complete bucket (the server's ``latest``), which the legend
  // and the description read and name (``latestLabel``): the current bucket is still filling.
  function chart(cfg) {
    // Drawn at the container's own width, so text keeps its size on a phone and on a wall screen.
    var W = Math.max(260, Math.round(cfg.width || 640)), H = 200, left = 64, right = 12, top = 12, bottom = 28;
    var plotW = W - left - right, plotH = H - top - bottom;
    var n = cfg.points.length;
    var max = 0;
    for (var i = 0; i < n; i++) {
      var stack = 0;
      cfg.series.forEach(function (series) {
        var v = series.values[i];
        if (v === null || v === undefined) return;
        if (cfg.kind === "bar") stack += v; else max = Math.max(max, v);
      });
      max = Math.max(max, stack);
    }
    // A line with a 0 in it has data (0 % errors); bars of 0 are no data (no requests).
    var empty = cfg.series.every(function (series) {
      return series.values.every(function (v) { return v === null || v === undefined || (cfg.kind === "bar" && v === 0); });
    });
    max = niceMax(max);
    var slot = plotW / Math.max(n, 1);
    function x(index) { return left + slot * (index + 0.5); }
    function y(value) { return top + plotH - (value / max) * plotH; }

    var latest = cfg.series.map(function (series) { return series.name + " " + cfg.format(series.latest); }).join(", ");
    var titleId = "t-" + cfg.id, descId = "d-" + cfg.id;
    var svg = s("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-labelledby": titleId + " " + descId,
      width: W, height: H, class: "chart-svg" },
      s("title", { id: titleId, text: cfg.title }),
      s("desc", { id: descId, text: empty ? cfg.emptyText : cfg.latestLabel ? "Last complete " + cfg.latestLabel + ": " +
        latest + "." : "No complete bucket yet." }));
    for (var g = 0; g <= 4; g++) {
      var value = (max / 4) * g, gy = y(value);
      svg.appendChild(s("line", { x1: left, x2: W - right, y1: gy, y2: gy, class: "grid-line" }));
      svg.appendChild(s("text", { x: left - 6, y: gy + 4, class: "axis-label", "text-anchor": "end", text: cfg.format(value) }));
    }
    [0, Math.floor((n - 1) / 2), n - 1].forEach(function (index, k) {
      if (!cfg.points[index]) return;
      svg.appendChild(s("text", { x: x(index), y: H - 8, class: "axis-label", "text-anchor": k === 0 ? "start" : k === 2 ? "end" : "middle",
        text: fmtClock(cfg.points[index].at) }));
    });
    if (cfg.kind === "bar") {
      var base = new Array(n).fill(0);
      cfg.series.forEach(function (series) {
        series.values.forEach(function (v, index) {
          if (!v) return;
          var y0 = y(base[index]), y1 = y(base[index] + v);
          base[index] += v;
          // The bucket still filling is drawn lighter: its bar grows until the bucket ends.
          var partial = cfg.points[index] && cfg.points[index].complete === false;
          svg.appendChild(s("rect", { x: left + slot * index + slot * 0.1, y: y1, width: Math.max(slot * 0.8, 1), height: Math.max(y0 - y1, 0.5),
            class: "bar " + series.cls + (partial ? " partial" : "") }));
        });
      });
    } else {
      cfg.series.forEach(function (series) {
        var d = "", pen = false;
        series.values.forEach(function (v, index) {
          if (v === null || v === undefined) { pen = false; return; }
          d += (pen ? "L" : "M") + x(index).toFixed(1) + " " + y(v).toFixed(1) + " ";
          var isolated = (index === 0 || series.values[index - 1] === null) && (index === n - 1 || series.values[index + 1] === null);
          if (isolated) svg.appendChild(s("circle", { cx: x(index), cy: y(v), r: 2.5, class: "dot " + series.cls }));
          pen = true;
        });
        if (d) svg.appendChild(s("path", { d: d, class: "line " + series.cls }));
      });
    }
    if (empty) svg.appendChild(s("text", { x: left + plotW / 2, y: top + plotH / 2, class: "empty-label", "text-anchor": "middle", text: cfg.emptyText }));
    var legend = h("ul", { class: "legend" },
      h("li", { class: "legend-when" }, cfg.latestLabel ? "Last complete " + cfg.latestLabel + ":" : "No complete bucket yet"),
      cfg.series.map(function (series) {
        return h("li", null, h("span", { class: "swatch " + series.cls, "aria-hidden": "true" }), series.name + " ",
          h("strong", null, cfg.format(series.latest)));
      }));
    return [svg, legend];
  }

  function renderCharts(seriesSection) {
    var buttons = document.querySelectorAll(".range button");
    buttons.forEach(function (button) { button.setAttribute("aria-pressed", String(button.getAttribute("data-range") === state.range)); });
    if (!seriesSection || unavailable(seriesSection) || !seriesSection[state.range]) {
      ["chart-latency", "chart-throughput", "chart-errors", "chart-payments"].forEach(function (id) {
        var node = document.querySelector("#" + id + " .chart-body");
        node.replaceChildren(note((seriesSection && seriesSection.reason) || "Charts are not available."));
      });
      return;
    }
    var series = seriesSection[state.range];
    var points = series.points || [];
    var stepLabel = series.stepSeconds >= 3600 ? "hour" : series.stepSeconds >= 60 ? (series.stepSeconds / 60) + " min" : series.stepSeconds + " s";
    function pick(key) { return points.map(function (p) { return p[key]; }); }
    var period = state.range === "1h" ? "the last hour" : "the last 24 hours";
    // The legends' interval, named: "1 min (12:04–12:05)".
    var last = series.latest;
    var latestLabel = last ? stepLabel + " (" + fmtClock(last.from) + "–" + fmtClock(last.to) + ")" : null;
    function latestOf(key) { return last ? last[key] : null; }
    function latestPayments(outcome) { return last && last.payments ? last.payments[outcome] : null; }
    function draw(id, cfg) {
      cfg.id = id + "-" + state.range;
      cfg.latestLabel = latestLabel;
      var node = document.querySelector("#" + id + " .chart-body");
      cfg.width = node.clientWidth;
      node.replaceChildren();
      append(node, chart(cfg));
    }
    draw("chart-latency", { title: "Latency over " + period, kind: "line", points: points, format: fmtMs,
      emptyText: "No requests in " + period + ".",
      series: [{ name: "p50", cls: "s-p50", values: pick("p50"), latest: latestOf("p50") },
        { name: "p95", cls: "s-p95", values: pick("p95"), latest: latestOf("p95") },
        { name: "p99", cls: "s-p99", values: pick("p99"), latest: latestOf("p99") }] });
    draw("chart-throughput", { title: "Requests per " + stepLabel + " over " + period, kind: "bar", points: points, format: fmtNumber,
      emptyText: "No requests in " + period + ".",
      series: [{ name: "requests", cls: "s-requests", values: pick("requests"), latest: latestOf("requests") }] });
    draw("chart-errors", { title: "Share of 5xx responses over " + period, kind: "line", points: points, format: fmtShare,
      emptyText: "No requests in " + period + ".",
      series: [{ name: "5xx share", cls: "s-errors", values: pick("errorShare"), latest: latestOf("errorShare") }] });
    var hasPayments = points.length && points[0].payments;
    draw("chart-payments", { title: "Payments per " + stepLabel + " over " + period, kind: "bar", points: points, format: fmtNumber,
      emptyText: hasPayments ? "No payments in " + period + "." : "Payment figures are not available.",
      series: [{ name: "succeeded", cls: "s-succeeded", values: points.map(function (p) { return p.payments ? p.payments.succeeded : null; }),
        latest: latestPayments("succeeded") },
        { name: "failed", cls: "s-failed", values: points.map(function (p) { return p.payments ? p.payments.failed : null; }),
          latest: latestPayments("failed") }] });
  }

  // --- the whole page --------------------------------------------------------------------------

  function showFull(full) {
    document.querySelectorAll("[data-full]").forEach(function (node) { node.hidden = !full; });
    // Figures a public viewer may not see are removed, not merely hidden.
    if (!full) document.querySelectorAll("[data-full] .slot").forEach(function (slot) { slot.replaceChildren(); });
    document.getElementById("restricted").hidden = full;
  }

  // A picker of the app services the store knows, only when there is more than one to choose from.
  function renderServicePicker(full, appServices) {
    var known = full && appServices && appServices.known ? appServices.known : [];
    var section = document.getElementById("app-service");
    section.hidden = known.length < 2;
    if (section.hidden) return;
    var picker = document.getElementById("service-picker");
    var names = known.join("\n");
    if (picker.getAttribute("data-names") !== names) {  // rebuilt only when the set changes: an open list stays open
      var options = [h("option", { value: "", text: "every service" })].concat(known.map(function (name) {
        return h("option", { value: name, text: name });
      }));
      picker.replaceChildren.apply(picker, options);
      picker.setAttribute("data-names", names);
    }
    picker.value = appServices.selected || "";
  }

  function feedUrl() {
    return state.service ? FEED + "?service=" + encodeURIComponent(state.service) : FEED;
  }

  function render(doc) {
    state.doc = doc;
    var full = doc.view === "full";
    renderServicePicker(full, doc.appServices);
    renderBanner(doc);
    renderServices(doc.services);
    renderUptime(doc.uptime, doc.incidents);
    renderIncidents(doc.incidents);
    showFull(full);
    if (full) {
      renderAlerts(doc.alerts);
      renderPerformance(doc.performance);
      renderBusiness(doc.business);
      renderErrors(doc.errors);
      renderCharts(doc.series);
    }
    var viewer = doc.viewer || {};
    document.getElementById("signin").hidden = !!viewer.signedIn;
    document.getElementById("signout").hidden = !viewer.signedIn;
  }

  function refresh() {
    if (state.inFlight) return;
    state.inFlight = true;
    fetch(feedUrl(), { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (doc) {
        render(doc);
        state.lastOk = doc.generatedAt;
        setText("freshness", "Updated " + fmtTime(doc.generatedAt) + " · refreshes every " + REFRESH_MS / 1000 + " s");
        document.getElementById("freshness").className = "freshness";
      })
      .catch(function (error) {
        var reason = navigator.onLine === false ? "offline" : error.message;
        setText("freshness", "Could not refresh (" + reason + ")" +
          (state.lastOk ? "; showing figures from " + fmtTime(state.lastOk) : "") + ". Retrying…");
        document.getElementById("freshness").className = "freshness stale";
      })
      .then(function () {
        state.inFlight = false;
        clearTimeout(state.timer);
        state.timer = setTimeout(refresh, REFRESH_MS);
      });
  }

  document.getElementById("service-picker").addEventListener("change", function (event) {
    state.service = event.target.value;
    refresh();
  });
  document.querySelectorAll(".range button").forEach(function (button) {
    button.addEventListener("click", function () {
      state.range = button.getAttribute("data-range");
      if (state.doc && state.doc.view === "full") renderCharts(state.doc.series);
    });
  });
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      if (state.doc && state.doc.view === "full") renderCharts(state.doc.series);
    }, 150);
  });
  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
  refresh();
})();
