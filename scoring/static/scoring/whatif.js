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

  function showResult(box, result) {
    var heading = el("h3", "What-if result");
    box.appendChild(heading);
    var facts = el("dl", undefined, "facts");
    [
      ["Decision", result.decision],
      ["Score", Math.round(result.score) + " points"],
      ["Probability of default", result.pd.toFixed(4)],
      ["Model", "v" + result.model_version],
      ["Changed", result.changed_features.length ? result.changed_features.join(", ") : "nothing"]
    ].forEach(function (pair) {
      facts.appendChild(el("dt", pair[0]));
      var dd = el("dd", pair[0] === "Decision" ? undefined : pair[1]);
      if (pair[0] === "Decision") { dd.appendChild(el("span", pair[1], "badge decision-" + pair[1])); }
      facts.appendChild(dd);
    });
    box.appendChild(facts);
    box.appendChild(el("h4", "Reasons"));
    var reasons = el("ol", undefined, "reasons whatif-reasons");
    result.reasons.forEach(function (r) {
      reasons.appendChild(el("li", (r.code ? r.code + ": " : "") + r.text + " (" + r.feature + " = " + r.value + ")"));
    });
    if (!result.reasons.length) { reasons.appendChild(el("li", "No feature raises the risk above the average applicant's.")); }
    box.appendChild(reasons);
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
