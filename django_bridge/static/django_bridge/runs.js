/* The runs page: start a workflow through the API, then open its run page. */
(function () {
  "use strict";

  var cfg = JSON.parse(document.getElementById("runs-config").textContent);
  var form = document.getElementById("start-form");
  var error = document.getElementById("start-error");
  var button = document.getElementById("start-button");

  function fail(message) {
    error.textContent = message;
    error.hidden = false;
    button.disabled = false;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    error.hidden = true;
    var kwargs;
    try {
      kwargs = JSON.parse(document.getElementById("start-kwargs").value || "{}");
    } catch (e) {
      return fail("Arguments must be a JSON object, e.g. {\"user_id\": 1}.");
    }
    button.disabled = true;
    fetch(cfg.runs_url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": window.DJANGO_BRIDGE_CSRF || "" },
      body: JSON.stringify({ name: document.getElementById("start-name").value, kwargs: kwargs }),
    })
      .then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, status: response.status, data: data }; });
      })
      .then(function (answer) {
        if (!answer.ok) {
          var d = answer.data || {};
          return fail(d.detail || Object.keys(d).map(function (k) { return k + ": " + [].concat(d[k]).join(" "); }).join("; ") || "HTTP " + answer.status);
        }
        window.location.href = cfg.run_page_url.replace(/0\/$/, answer.data.id + "/");
      })
      .catch(function (e) { fail(e.message); });
  });
})();
