// hookgate console: the monitoring charts (uPlot, served from this gateway) and the
// confirmation before a roll back. No other script runs on these pages.
(function () {
  "use strict";

  function confirmations() {
    document.querySelectorAll("button[data-confirm]").forEach(function (button) {
      var form = button.form;
      if (!form) return;
      form.addEventListener("submit", function (event) {
        if (!window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  }

  var COLORS = ["#2563eb", "#f59e0b", "#dc2626", "#059669", "#7c3aed", "#db2777"];

  function width(el) {
    return Math.max(320, Math.floor(el.getBoundingClientRect().width || el.clientWidth || 600));
  }

  function mark(el, points) {
    el.setAttribute("data-drawn", "true");
    el.setAttribute("data-points", String(points));
  }

  function count(values) {
    var n = 0;
    values.forEach(function (v) { if (v !== null && v !== undefined && v !== 0) n += 1; });
    return n;
  }

  function lines(el, title, t, series, yLabel, yValue) {
    var data = [t];
    var opts = {
      width: width(el), height: 220,
      scales: { x: { time: true } },
      axes: [{}, { label: yLabel, values: yValue ? function (u, ticks) { return ticks.map(yValue); } : undefined }],
      series: [{}],
    };
    var points = 0;
    series.forEach(function (s, i) {
      data.push(s.values);
      points += count(s.values);
      opts.series.push({ label: s.label, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: false,
                         points: { show: true, size: 4 } });
    });
    new uPlot(opts, data, el);
    mark(el, points);
  }

  function histogram(el, labels, counts) {
    var xs = counts.map(function (_, i) { return i; });
    var opts = {
      width: width(el), height: 220,
      scales: { x: { time: false } },
      axes: [
        { label: "latency (ms)", values: function (u, ticks) { return ticks.map(function (i) { return labels[i] || ""; }); }, rotate: -45, size: 60 },
        { label: "requests" },
      ],
      legend: { show: true },
      series: [{ label: "bucket", value: function (u, i) { return i == null ? "-" : labels[i]; } },
               { label: "requests", fill: "rgba(37,99,235,0.5)", stroke: COLORS[0],
                 paths: uPlot.paths.bars({ size: [0.9, 40] }), points: { show: false } }],
    };
    new uPlot(opts, [xs, counts], el);
    mark(el, count(counts));
  }

  function charts() {
    var blob = document.getElementById("monitoring-data");
    if (!blob || typeof uPlot === "undefined") return;
    var d = JSON.parse(blob.textContent);
    var pct = function (v) { return v == null ? null : Math.round(v * 1000) / 10; };
    histogram(document.getElementById("chart-latency-histogram"), d.histogram.labels, d.histogram.counts);
    lines(document.getElementById("chart-latency"), "latency p50 / p90 / p99 (ms)", d.t, [
      { label: "p50", values: d.p50 }, { label: "p90", values: d.p90 }, { label: "p99", values: d.p99 },
    ], "ms");
    lines(document.getElementById("chart-cache"), "cache hit rate (%)", d.t, [
      { label: "exact", values: d.exact_rate.map(pct) }, { label: "semantic", values: d.semantic_rate.map(pct) },
    ], "%");
    var errors = d.error_series.length ? d.error_series : [{ label: "errors", values: d.errors }];
    lines(document.getElementById("chart-errors"), "errors by type (status)", d.t, errors, "requests");
    lines(document.getElementById("chart-requests"), "requests and money saved", d.t, [
      { label: "requests", values: d.requests },
      { label: "saved ($ x 1000)", values: d.saved.map(function (v) { return v == null ? null : v * 1000; }) },
    ], "count");
  }

  function start() {
    confirmations();
    charts();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
