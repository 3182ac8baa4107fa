// Charts of the portal, drawn with the vendored Chart.js. Each <canvas data-chart="kind"
// data-source="id"> reads its numbers from the JSON block with that id (json_script:
// data, never code), so no inline script is needed.
(function () {
  "use strict";

  var BLUE = "#0b4f9c", ORANGE = "#b35900", GREEN = "#1b6b2f", RED = "#a4161a", GREY = "#6b7280";

  function data(canvas) {
    var source = document.getElementById(canvas.dataset.source);
    return source ? JSON.parse(source.textContent) : null;
  }

  function xy(xs, ys) {
    return (xs || []).map(function (x, i) { return { x: x, y: ys[i] }; });
  }

  function line(label, points, color, extra) {
    return Object.assign({ label: label, data: points, borderColor: color, backgroundColor: color, pointRadius: 0, borderWidth: 2, showLine: true }, extra || {});
  }

  var diagonal = line("Random", [{ x: 0, y: 0 }, { x: 1, y: 1 }], GREY, { borderDash: [6, 4], borderWidth: 1 });

  function unitAxes(xTitle, yTitle) {
    return {
      x: { type: "linear", min: 0, max: 1, title: { display: true, text: xTitle } },
      y: { type: "linear", min: 0, max: 1, title: { display: true, text: yTitle } }
    };
  }

  // Time on a linear axis of milliseconds (no date adapter is vendored): points sit where
  // their time is, however uneven the gaps, and the ticks read as dates.
  function timeTicks(ms) {
    var d = new Date(ms);
    function two(n) { return n < 10 ? "0" + n : String(n); }
    return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " + two(d.getHours()) + ":" + two(d.getMinutes());
  }

  // Vertical cutoff lines over a linear x axis, from 0 to top.
  function cutoffLines(cutoffs, top) {
    return [
      line("Approve from " + cutoffs.approve, [{ x: cutoffs.approve, y: 0 }, { x: cutoffs.approve, y: top }], GREEN, { type: "line", borderDash: [6, 4] }),
      line("Decline below " + cutoffs.decline, [{ x: cutoffs.decline, y: 0 }, { x: cutoffs.decline, y: top }], RED, { type: "line", borderDash: [6, 4] })
    ];
  }

  var PALETTE = [BLUE, ORANGE, GREEN, RED, "#6b21a8", "#0f766e", GREY];

  // One line per compared version (the logistic baseline last, dashed).
  function overlay(series, pick, xTitle, yTitle, extra) {
    var sets = [];
    series.forEach(function (s, i) {
      var points = pick(s);
      if (!points) { return; }
      var dashed = s.label === "Logistic baseline" ? { borderDash: [3, 3] } : {};
      sets.push(line(s.label, points, PALETTE[i % PALETTE.length], Object.assign(dashed, extra || {})));
    });
    return sets;
  }

  var builders = {
    "compare-roc": function (d) {
      var sets = overlay(d, function (s) { return s.roc ? xy(s.roc.fpr, s.roc.tpr) : null; });
      sets.push(diagonal);
      return { type: "scatter", data: { datasets: sets }, options: { scales: unitAxes("False positive rate", "True positive rate") } };
    },
    "compare-gains": function (d) {
      var sets = overlay(d, function (s) { return s.gains.x.length ? xy(s.gains.x, s.gains.y) : null; });
      sets.push(diagonal);
      return { type: "scatter", data: { datasets: sets }, options: { scales: unitAxes("Share of applicants reviewed, riskiest first", "Share of defaults caught") } };
    },
    "compare-calibration": function (d) {
      var top = 0.01;
      d.forEach(function (s) { if (s.calibration) { top = Math.max.apply(null, s.calibration.x.concat(s.calibration.y, [top])); } });
      var sets = overlay(d, function (s) { return s.calibration ? xy(s.calibration.x, s.calibration.y) : null; }, null, null, { pointRadius: 3 });
      sets.push(line("Perfect calibration", [{ x: 0, y: 0 }, { x: top, y: top }], GREY, { borderDash: [6, 4], borderWidth: 1 }));
      return { type: "scatter", data: { datasets: sets }, options: { scales: {
        x: { type: "linear", min: 0, title: { display: true, text: "Mean predicted PD" } },
        y: { type: "linear", min: 0, title: { display: true, text: "Observed default rate" } }
      } } };
    },
    throughput: function (d) {
      return { type: "scatter", data: { datasets: [line("Rows scored", xy(d.seconds, d.rows), BLUE, { pointRadius: 3 })] },
        options: { scales: {
          x: { type: "linear", min: 0, title: { display: true, text: "Seconds since the run started" } },
          y: { type: "linear", min: 0, title: { display: true, text: "Rows scored" } }
        } } };
    },
    "run-distribution": function (d) {
      var top = Math.max.apply(null, d.champion.concat(d.challenger || [], [1]));
      var sets = [{ type: "bar", label: "Champion", data: xy(d.x, d.champion), backgroundColor: BLUE, barPercentage: 1, categoryPercentage: 1 }];
      if (d.challenger) { sets.push({ type: "bar", label: "Challenger (shadow)", data: xy(d.x, d.challenger), backgroundColor: "rgba(179, 89, 0, 0.55)", barPercentage: 1, categoryPercentage: 1 }); }
      var xs = d.x.concat([d.cutoffs.approve, d.cutoffs.decline]);
      return { type: "bar", data: { datasets: sets.concat(cutoffLines(d.cutoffs, top)) },
        options: { scales: {
          x: { type: "linear", min: Math.min.apply(null, xs) - d.width, max: Math.max.apply(null, xs) + d.width, title: { display: true, text: "Score (points), bands of " + d.width } },
          y: { beginAtZero: true, title: { display: true, text: "Applicants" } }
        } } };
    },
    distribution: function (d) {
      return { type: "bar", data: { labels: d.labels, datasets: [{ label: "Applicants", data: d.counts, backgroundColor: BLUE }] },
        options: { scales: { x: { title: { display: true, text: "Score band (points)" } }, y: { title: { display: true, text: "Applicants" }, beginAtZero: true } } } };
    },
    history: function (d) {
      return { type: "line", data: { labels: d.months, datasets: [
        { label: "Balance", data: d.balance, borderColor: BLUE, backgroundColor: BLUE, yAxisID: "y" },
        { label: "Amount paid", data: d.amount_paid, borderColor: GREEN, backgroundColor: GREEN, yAxisID: "y" },
        { label: "Days past due", data: d.days_past_due, borderColor: RED, backgroundColor: RED, yAxisID: "dpd", type: "bar" }
      ] }, options: { scales: {
        y: { position: "left", title: { display: true, text: "Amount" }, beginAtZero: true },
        dpd: { position: "right", title: { display: true, text: "Days past due" }, beginAtZero: true, grid: { drawOnChartArea: false } }
      } } };
    },
    waterfall: function (d) {
      var last = d.bars.length - 1;
      var colors = d.bars.map(function (bar, i) {
        if (i === 0 || i === last) { return BLUE; }
        return bar[1] >= bar[0] ? RED : GREEN;
      });
      return { type: "bar", data: { labels: d.labels, datasets: [{ label: "Log-odds of default", data: d.bars, backgroundColor: colors }] },
        options: { indexAxis: "y", plugins: { legend: { display: false }, tooltip: { callbacks: { label: function (ctx) {
          var bar = ctx.raw, i = ctx.dataIndex;
          if (i === 0 || i === last) { return "log-odds " + bar[1].toFixed(3); }
          var change = bar[1] - bar[0];
          return (change >= 0 ? "+" : "") + change.toFixed(3) + " log-odds";
        } } } }, scales: { x: { title: { display: true, text: "Log-odds of default" } } } } };
    },
    "score-history": function (d) {
      var first = d.times[0], last = d.times[d.times.length - 1], pad = Math.max((last - first) * 0.05, 60000);
      var lo = first - pad, hi = last + pad;
      function level(value, label, color) { return line(label, [{ x: lo, y: value }, { x: hi, y: value }], color, { borderDash: [6, 4], borderWidth: 1 }); }
      return { type: "scatter", data: { datasets: [
        line("Score", xy(d.times, d.scores), BLUE, { pointRadius: 3 }),
        level(d.cutoffs.approve, "Approve from " + d.cutoffs.approve, GREEN),
        level(d.cutoffs.decline, "Decline below " + d.cutoffs.decline, RED)
      ] }, options: { scales: {
        x: { type: "linear", min: lo, max: hi, title: { display: true, text: "Scored at" }, ticks: { maxTicksLimit: 6, callback: timeTicks } },
        y: { type: "linear", min: d.axis.min, max: d.axis.max, title: { display: true, text: "Points" } }
      } } };
    },
    roc: function (d) {
      var sets = [line("Model", xy(d.roc.model.fpr, d.roc.model.tpr), BLUE)];
      if (d.roc.baseline) { sets.push(line("Logistic baseline", xy(d.roc.baseline.fpr, d.roc.baseline.tpr), ORANGE, { borderDash: [3, 3] })); }
      sets.push(diagonal);
      return { type: "scatter", data: { datasets: sets }, options: { scales: unitAxes("False positive rate", "True positive rate") } };
    },
    ks: function (d) {
      return { type: "scatter", data: { datasets: [
        line("Cumulative share of bads", xy(d.ks.population, d.ks.cum_bad), RED),
        line("Cumulative share of goods", xy(d.ks.population, d.ks.cum_good), GREEN)
      ] }, options: { scales: unitAxes("Share of applicants, riskiest first", "Cumulative share") } };
    },
    calibration: function (d) {
      var top = Math.max.apply(null, d.calibration.mean_pd.concat(d.calibration.observed, [0.01]));
      return { type: "scatter", data: { datasets: [
        line("Deciles", xy(d.calibration.mean_pd, d.calibration.observed), BLUE, { pointRadius: 4, showLine: true }),
        line("Perfect calibration", [{ x: 0, y: 0 }, { x: top, y: top }], GREY, { borderDash: [6, 4], borderWidth: 1 })
      ] }, options: { scales: {
        x: { type: "linear", min: 0, title: { display: true, text: "Mean predicted PD" } },
        y: { type: "linear", min: 0, title: { display: true, text: "Observed default rate" } }
      } } };
    },
    gains: function (d) {
      var sets = [line("Model", xy(d.gains.model.x, d.gains.model.y), BLUE)];
      if (d.gains.baseline.x.length) { sets.push(line("Logistic baseline", xy(d.gains.baseline.x, d.gains.baseline.y), ORANGE, { borderDash: [3, 3] })); }
      sets.push(diagonal);
      return { type: "scatter", data: { datasets: sets }, options: { scales: unitAxes("Share of applicants reviewed, riskiest first", "Share of defaults caught") } };
    },
    lift: function (d) {
      var labels = d.lift.map(function (_, i) { return "D" + (i + 1); });
      return { type: "bar", data: { labels: labels, datasets: [{ label: "Lift (decile default rate / overall)", data: d.lift, backgroundColor: BLUE }] },
        options: { scales: { x: { title: { display: true, text: "PD decile, riskiest first" } }, y: { beginAtZero: true, title: { display: true, text: "Lift" } } } } };
    },
    training: function (d) {
      var history = d.history || [];
      return { type: "line", data: { labels: history.map(function (h) { return h.epoch; }), datasets: [
        { label: "Training loss", data: history.map(function (h) { return h.train_loss; }), borderColor: ORANGE, backgroundColor: ORANGE, yAxisID: "loss" },
        { label: "Validation AUC", data: history.map(function (h) { return h.val_auc; }), borderColor: BLUE, backgroundColor: BLUE, yAxisID: "auc" }
      ] }, options: { scales: {
        x: { title: { display: true, text: "Epoch" } },
        loss: { position: "left", title: { display: true, text: "Loss" } },
        auc: { position: "right", title: { display: true, text: "AUC" }, grid: { drawOnChartArea: false } }
      } } };
    }
  };

  var charts = {};

  function draw(canvas, payload) {
    var build = builders[canvas.dataset.chart];
    if (!build || !payload || typeof window.Chart === "undefined") { return; }
    var config = build(payload);
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options);
    if (charts[canvas.dataset.chart]) { charts[canvas.dataset.chart].destroy(); }
    charts[canvas.dataset.chart] = new window.Chart(canvas, config);
    canvas.dataset.drawn = "1";
  }

  document.addEventListener("DOMContentLoaded", function () {
    window.Chart.defaults.color = "#333333";
    window.Chart.defaults.font.family = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) { draw(canvas, data(canvas)); });
  });

  // Live training progress (portal.js polls and announces each new state).
  document.addEventListener("portal:training", function (event) {
    var canvas = document.querySelector('canvas[data-chart="training"]');
    if (canvas && event.detail.history && event.detail.history.length) { draw(canvas, event.detail); }
  });
})();
