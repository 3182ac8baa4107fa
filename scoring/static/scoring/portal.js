// The portal's small behaviours, with no inline script (the CSP allows only our own files):
// confirmation of destructive forms, and polling of progress (imports, training, batch runs).
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    });
  }

  function setField(root, name, text) {
    var el = root.querySelector('[data-field="' + name + '"]');
    if (el) { el.textContent = text; }
  }

  function every(ms, step) {
    var timer = window.setInterval(function () {
      step().then(function (keepGoing) {
        if (!keepGoing) { window.clearInterval(timer); }
      }).catch(function () { /* a missed poll is retried on the next tick */ });
    }, ms);
  }

  var pollers = {
    // An import: when it finishes, reload to show the report table.
    "import": function (root) {
      every(1000, function () {
        return getJSON(root.dataset.pollUrl).then(function (state) {
          setField(root, "status_display", state.status_display);
          if (!state.active) { window.location.reload(); }
          return state.active;
        });
      });
    },
    // Training: move the progress bar, tell the chart, reload once trained (metrics appear).
    "model": function (root) {
      var bar = root.querySelector("progress");
      every(1000, function () {
        return getJSON(root.dataset.pollUrl).then(function (state) {
          if (bar) { bar.value = state.fraction; bar.textContent = Math.round(state.fraction * 100) + "%"; }
          setField(root, "status_display", state.status_display);
          setField(root, "phase", state.phase || "");
          setField(root, "epochs", state.epoch ? "epoch " + state.epoch + " of " + state.max_epochs : "");
          document.dispatchEvent(new CustomEvent("portal:training", { detail: state }));
          if (!state.active) { window.setTimeout(function () { window.location.reload(); }, 500); }
          return state.active;
        });
      });
    },
    // Batch runs: update every active row; stop when none is active.
    "runs": function (root) {
      var rows = root.querySelectorAll('tr[data-active="1"]');
      if (!rows.length) { return; }
      var ids = Array.prototype.map.call(rows, function (r) { return r.dataset.runId; });
      every(1000, function () {
        return getJSON(root.dataset.pollUrl + "?ids=" + ids.join(",")).then(function (data) {
          var active = 0;
          data.runs.forEach(function (run) {
            var row = root.querySelector('tr[data-run-id="' + run.id + '"]');
            if (!row) { return; }
            var bar = row.querySelector("progress");
            // Nothing done yet: an indeterminate bar says "working", not "0 %".
            if (bar && run.active && !run.rows_done) { bar.removeAttribute("value"); } else if (bar) { bar.value = run.fraction; }
            setField(row, "status_display", run.status_display);
            setField(row, "phase", run.phase);
            setField(row, "rows", run.rows_done + " / " + run.rows_total);
            setField(row, "rate", run.rows_per_second === null ? "–" : run.rows_per_second);
            setField(row, "eta", run.eta_seconds ? Math.round(run.eta_seconds) + " s" : "–");
            if (run.status === "pending" || run.status === "running") { active += 1; }
          });
          if (!active) { window.location.reload(); }
          return active > 0;
        });
      });
    }
  };

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll-url]").forEach(function (root) {
      var start = pollers[root.dataset.pollKind];
      if (start) { start(root); }
    });
  });
})();
