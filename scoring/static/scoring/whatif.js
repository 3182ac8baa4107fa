// The what-if panel: POST the changed feature values (same-origin, CSRF token from the
// form) and show the champion's answer. The server saves nothing.
(function () {
  "use strict";

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined) { node.textContent = text; }
    if (className) { node.className = className; }
    return node;
  }

  function showErrors(box, errors) {
    box.appendChild(el("p", "The values could not be scored:", ""));
    var list = el("ul", undefined, "errorlist");
    Object.keys(errors).forEach(function (field) {
      errors[field].forEach(function (message) {
        list.appendChild(el("li", (field === "__all__" ? "" : field + ": ") + message));
      });
    });
    box.appendChild(list);
  }

  function cell(tag, text, scope) {
    var node = el(tag, text);
    if (scope) { node.setAttribute("scope", scope); }
    return node;
  }

  function badge(decision) { return el("span", decision, "badge decision-" + decision); }

  function points(value) { return value === null ? "not a reason" : (value > 0 ? "+" : "") + value.toFixed(1) + " points"; }

  function table(caption, headers) {
    var t = el("table", undefined, "whatif-change");
    t.appendChild(el("caption", caption));
    var row = el("tr");
    headers.forEach(function (h) { row.appendChild(cell("th", h, "col")); });
    var head = el("thead");
    head.appendChild(row);
    t.appendChild(head);
    t.appendChild(el("tbody"));
    return t;
  }

  // Old → new: the champion on the current values beside the changed ones.
  function showResult(box, result) {
    box.appendChild(el("h3", "What-if result"));
    var changed = result.changed_labels.length ? result.changed_labels.join(", ") : "nothing";
    box.appendChild(el("p", "Changed: " + changed + " · model v" + result.model_version + " · nothing saved.", "muted"));
    var measures = table("Current values → changed values", ["", "Current", "What if", "Change"]);
    result.change.measures.forEach(function (m) {
      var row = el("tr");
      row.appendChild(cell("th", m.label, "row"));
      var isDecision = m.label === "Decision";
      var before = el("td"), after = el("td");
      if (isDecision) { before.appendChild(badge(m.before)); after.appendChild(badge(m.after)); }
      else { before.textContent = m.before; after.textContent = m.after; before.className = after.className = "num"; }
      row.appendChild(before);
      row.appendChild(after);
      var delta = el("td");
      if (isDecision) { delta.textContent = m.before === m.after ? "same" : m.before + " → " + m.after; }
      else {
        var d = m.after - m.before;
        delta.className = "num";
        delta.textContent = d === 0 ? "0" : (d > 0 ? "+" : "") + (m.label.indexOf("Probability") === 0 ? d.toFixed(4) : String(Math.round(d)));
      }
      row.appendChild(delta);
      measures.tBodies[0].appendChild(row);
    });
    box.appendChild(el("div", undefined, "table-wrap")).appendChild(measures);
    var reasons = table("Reasons: current → what if", ["Reason", "Value", "Points against the average"]);
    reasons.classList.add("whatif-reasons");
    result.change.reasons.forEach(function (r) {
      var row = el("tr");
      row.appendChild(cell("th", (r.code ? r.code + ": " : "") + (r.text || r.label), "row"));
      row.appendChild(el("td", r.label + ": " + (r.before_value === null ? "(not a reason)" : r.before_value) + " → " + (r.after_value === null ? "(not a reason)" : r.after_value)));
      row.appendChild(el("td", points(r.before_points) + " → " + points(r.after_points)));
      reasons.tBodies[0].appendChild(row);
    });
    if (!result.change.reasons.length) {
      var none = el("tr");
      var td = el("td", "No feature raises the risk above the average applicant's.");
      td.colSpan = 3;
      none.appendChild(td);
      reasons.tBodies[0].appendChild(none);
    }
    box.appendChild(el("div", undefined, "table-wrap")).appendChild(reasons);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("whatif-form");
    var box = document.getElementById("whatif-result");
    if (!form || !box) { return; }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = form.querySelector('button[type="submit"]');
      var token = form.querySelector('input[name="csrfmiddlewaretoken"]').value;
      button.disabled = true;
      box.textContent = "Scoring…";
      fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { "X-CSRFToken": token, Accept: "application/json" }
      }).then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      }).then(function (answer) {
        box.textContent = "";
        if (answer.ok) { showResult(box, answer.body); } else { showErrors(box, answer.body.errors || { __all__: ["Unexpected answer"] }); }
      }).catch(function () {
        box.textContent = "The request failed; try again.";
      }).finally(function () {
        button.disabled = false;
      });
    });
  });
})();
