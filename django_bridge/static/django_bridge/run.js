/* The run page: renders a run from the API and refreshes itself while the run moves.
 *
 * Screens follow current_step_display (workflows guide, "The current_step_display Property"):
 * completed -> completion screen, failed/cancelled -> failure screen, an action step the run is
 * suspended at -> the action's form (built from GET actions-schema/<name>/), suspended -> the
 * waiting screen, anything else -> the processing spinner.
 *
 * The timeline (GET runs/<id>/timeline/, read from the run's Temporal history) is loaded with
 * every refresh, and a few more times once the run finished, until its history says it closed.
 *
 * Custom widgets: a FieldDisplayConfig's display_component names a renderer in
 * window.DjangoBridgeComponents = {Name: function (field, input) { return element; }}, where
 * `input` is the default control; without one the default control is used.
 */
(function () {
  "use strict";

  var cfg = JSON.parse(document.getElementById("run-config").textContent);
  var csrf = window.DJANGO_BRIDGE_CSRF || "";
  var screen = document.getElementById("screen");
  var lastKey = null;
  var timer = null;
  var schemas = {};
  var busy = false;
  var FINISHED = { completed: true, failed: true, cancelled: true };
  var finished = false;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else node.setAttribute(key, value === true ? "" : value);
    });
    (children || []).forEach(function (child) {
      if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function api(url, options) {
    options = options || {};
    var headers = { Accept: "application/json" };
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      headers["X-CSRFToken"] = csrf;
    }
    return fetch(url, {
      method: options.method || "GET",
      credentials: "same-origin",
      headers: headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(refresh, ms === undefined ? cfg.poll_ms : ms);
  }

  function refresh() {
    return api(cfg.run_url)
      .then(function (response) {
        if (!response.ok) throw new Error("The run could not be loaded (HTTP " + response.status + ").");
        return response.json();
      })
      .then(function (run) {
        render(run);
        finished = !!FINISHED[run.status];
        loadTimeline();
        if (!finished) schedule();
      })
      .catch(function (error) {
        showNotice(error.message);
        schedule(cfg.poll_ms * 3);
      });
  }

  // ------------------------------------------------------------------ header, progress, history
  function render(run) {
    var display = run.current_step_display;
    var status = document.getElementById("run-status");
    status.textContent = display.status;
    status.className = "badge badge-" + display.status;
    document.getElementById("run-step").textContent = display.step_title || display.current_step;
    var pct = Math.round((display.progress || 0) * 100);
    var fill = document.getElementById("progress-fill");
    fill.style.width = pct + "%";
    fill.className = "progress-fill" + (display.status === "completed" ? " done" : "");
    document.getElementById("progress").setAttribute("aria-valuenow", String(pct));
    document.getElementById("progress-label").textContent = pct + "%";
    renderHistory(run.steps || []);
    document.getElementById("context").textContent = JSON.stringify(run.data, null, 2);
    var stalled = renderWorker(run);

    var key = [display.status, display.current_step, (run.steps || []).length, display.action_name || "", stalled].join("|");
    if (key !== lastKey && !busy) {
      lastKey = key;
      renderScreen(run, display);
    }
  }

  // Steps declared @step(visible=False) are hidden unless "show hidden steps" is ticked, in the
  // timeline and in the step history; each row shows the step's title (step_display).
  var lastSteps = [];
  var lastEntries = null;

  function showHidden() {
    var toggle = document.getElementById("show-hidden");
    return toggle ? toggle.checked : false;
  }

  function isHidden(shown) {
    return (shown || {}).visible === false;
  }

  function updateHiddenToggle() {
    var inHistory = lastSteps.filter(function (s) { return isHidden(s.step_display); }).length;
    var inTimeline = (lastEntries || []).filter(hiddenEntry).length;
    var count = Math.max(inHistory, inTimeline);
    var label = document.getElementById("show-hidden-label");
    if (!label) return;
    label.hidden = count === 0;
    document.getElementById("hidden-count").textContent = String(count);
  }

  function renderHistory(steps) {
    lastSteps = steps;
    var body = document.getElementById("history");
    updateHiddenToggle();
    body.textContent = "";
    if (!steps.length) {
      body.appendChild(el("tr", {}, [el("td", {
        colspan: "5",
        className: "muted",
        text: "No step has completed or failed yet. Steps that wait or sleep are in the timeline above.",
      })]));
      return;
    }
    steps.forEach(function (s) {
      var shown = s.step_display || {};
      var invisible = isHidden(shown);
      var row = el("tr", {
        "data-step": s.step_name,
        "data-step-type": shown.step_type || "",
        className: invisible ? "hidden-step" : "",
      }, [
        el("td", { text: String(s.seq) }),
        el("td", { title: s.step_name, text: shown.step_title || s.step_name }),
        el("td", {}, [el("span", { className: "badge badge-" + s.status, text: s.status })]),
        el("td", { text: new Date(s.created_at).toLocaleTimeString() }),
        el("td", { className: "err", text: s.error || "" }),
      ]);
      row.hidden = invisible && !showHidden();
      body.appendChild(row);
    });
  }

  // ------------------------------------------------------------------ the timeline
  var timelineBusy = false;
  var timelineAfterFinish = 0;
  var CLOSING = { completed: true, failed: true, cancelled: true, terminated: true, timed_out: true };

  function hiddenEntry(e) {
    return e.kind !== "run" && isHidden(e.step_display);
  }

  function loadTimeline() {
    if (timelineBusy || !cfg.timeline_url) return; // Temporal answers slowly: no pile of requests
    timelineBusy = true;
    api(cfg.timeline_url)
      .then(function (response) {
        if (!response.ok) throw new Error("The timeline could not be loaded (HTTP " + response.status + ").");
        return response.json();
      })
      .then(function (timeline) {
        timelineBusy = false;
        renderTimeline(timeline);
        // The projection says finished a moment before the workflow closes: read the history
        // again until it shows the end.
        var last = timeline.entries[timeline.entries.length - 1];
        var closed = timeline.source !== "temporal" || (last && last.kind === "run" && CLOSING[last.outcome]);
        if (finished && !closed && timelineAfterFinish < 10) {
          timelineAfterFinish += 1;
          setTimeout(loadTimeline, cfg.poll_ms);
        }
      })
      .catch(function (error) {
        timelineBusy = false;
        var note = document.getElementById("timeline-note");
        note.textContent = error.message;
        note.hidden = false;
      });
  }

  function when(entry) {
    if (!entry.at) return "";
    var start = new Date(entry.at).toLocaleTimeString();
    if (entry.open) return "since " + start;
    if (entry.ended_at && entry.ended_at !== entry.at) {
      var end = new Date(entry.ended_at).toLocaleTimeString();
      if (end !== start) return start + " – " + end;
    }
    return start;
  }

  function renderTimeline(timeline) {
    lastEntries = timeline.entries;
    updateHiddenToggle();
    var note = document.getElementById("timeline-note");
    note.textContent = timeline.note || "";
    note.hidden = !timeline.note;
    var body = document.getElementById("timeline");
    body.textContent = "";
    if (!timeline.entries.length) {
      body.appendChild(el("tr", {}, [el("td", { colspan: "4", className: "muted", text: "Nothing has happened yet." })]));
      return;
    }
    timeline.entries.forEach(function (e) {
      var shown = e.step_display || {};
      var invisible = hiddenEntry(e);
      var classes = ["kind-" + e.kind, "outcome-" + e.outcome];
      if (e.open) classes.push("open");
      if (invisible) classes.push("hidden-step");
      var row = el("tr", {
        "data-kind": e.kind,
        "data-outcome": e.outcome,
        "data-step": e.step || null,
        "data-open": e.open ? "true" : null,
        className: classes.join(" "),
      }, [
        el("td", { text: e.seq === null || e.seq === undefined ? "" : String(e.seq) }),
        el("td", { title: e.step || "", text: e.step ? shown.step_title || e.step : "" }),
        el("td", { className: "what", text: e.summary }),
        el("td", { text: when(e) }),
      ]);
      row.hidden = invisible && !showHidden();
      body.appendChild(row);
    });
  }

  // ------------------------------------------------------------------ screens
  function setScreen(node) {
    screen.textContent = "";
    screen.appendChild(node);
  }

  function showNotice(message) {
    var notice = document.getElementById("notice");
    if (!notice) {
      notice = el("p", { id: "notice", className: "error" });
      screen.parentNode.insertBefore(notice, screen);
    }
    notice.textContent = message || "";
    notice.hidden = !message;
  }

  // No worker polls the run's task queue (or Temporal is unreachable): the run does not move until
  // one does; the message says so and what to run. Returns whether the run is stalled that way.
  function renderWorker(run) {
    var box = document.getElementById("no-worker");
    var worker = run.worker;
    var stalled = !!(worker && !FINISHED[run.status] && (worker.state === "no_worker" || worker.state === "unreachable"));
    if (box) {
      box.hidden = !stalled;
      box.textContent = stalled ? worker.message : "";
    }
    return stalled;
  }

  // A signal sent by hand whose payload did not fit the Context: the run still waits there.
  function renderRejected(run) {
    var box = document.getElementById("rejected-signal");
    if (!box) return;
    var r = run.rejected_signal;
    var current = r && run.status === "suspended" && r.wait_seq === run.wait_seq;
    box.hidden = !current;
    box.textContent = current ? "A signal sent by hand was rejected: " + r.error : "";
  }

  // What the reconciler changed so the row follows Temporal (terminated, timed out, reset there).
  function renderRepairs(run) {
    var list = document.getElementById("repairs");
    if (!list) return;
    var repairs = run.repairs || [];
    list.textContent = "";
    repairs.forEach(function (r) {
      list.appendChild(el("li", { text: "Changed to follow Temporal: " + r.detail }));
    });
    list.hidden = repairs.length === 0;
  }

  function renderScreen(run, display) {
    showNotice("");
    renderRejected(run);
    renderRepairs(run);
    if (display.status === "completed") return showCompleted(display.completion_display || {});
    if (display.status === "failed") return showFinished("failed", "Failed", run.error || "The run failed.");
    if (display.status === "cancelled") return showFinished("cancelled", "Cancelled", run.error || "The run was cancelled.");
    if (display.step_type === "action" && display.status === "suspended" && display.action_name) return showForm(run, display);
    if (display.status === "suspended") return showWaiting(display.waiting_display || {}, run);
    return showProcessing(display, run);
  }

  function showCompleted(c) {
    setScreen(el("div", { className: "screen screen-completed", "data-screen": "completed" }, [
      el("div", { className: "icon", text: "\u2714" }),
      el("h2", { text: c.display_title || "Completed" }),
      c.display_subtitle ? el("p", { text: c.display_subtitle }) : null,
    ]));
  }

  function showFinished(kind, title, message) {
    setScreen(el("div", { className: "screen screen-" + kind, "data-screen": kind }, [
      el("div", { className: "icon", text: "\u2716" }),
      el("h2", { text: title }),
      el("p", { text: message }),
    ]));
  }

  function showWaiting(w, run) {
    setScreen(el("div", { className: "screen screen-waiting", "data-screen": "waiting" }, [
      el("div", { className: "spinner" }),
      el("h2", { text: w.display_title || "Waiting" }),
      w.display_subtitle ? el("p", { text: w.display_subtitle }) : null,
      el("p", { className: "muted", text: "Waiting for: " + (w.display_waiting_for || run.waiting_signal || "an event") }),
    ]));
  }

  function showProcessing(display, run) {
    var noWorker = run && run.worker && run.worker.state === "no_worker";
    var label = noWorker ? "Waiting for a worker…" : display.status === "waiting" ? "Waiting to continue…" : "Working on it…";
    setScreen(el("div", { className: "screen screen-processing", "data-screen": "processing" }, [
      el("div", { className: "spinner" }),
      el("h2", { text: label }),
      el("p", { text: display.step_title || display.current_step }),
    ]));
  }

  // ------------------------------------------------------------------ the action form
  function loadSchema(name) {
    if (schemas[name]) return Promise.resolve(schemas[name]);
    var url = cfg.actions_schema_url + encodeURIComponent(name) + "/";
    return api(url).then(function (response) {
      if (!response.ok) throw new Error("The form of action " + name + " could not be loaded (HTTP " + response.status + ").");
      return response.json().then(function (schema) { schemas[name] = schema; return schema; });
    });
  }

  function showForm(run, display) {
    setScreen(el("div", { className: "screen screen-processing" }, [el("div", { className: "spinner" })]));
    loadSchema(display.action_name)
      .then(function (schema) { setScreen(buildForm(run, display, schema)); })
      .catch(function (error) { showNotice(error.message); lastKey = null; });
  }

  function buildForm(run, display, schema) {
    var meta = display.step_display || schema.display || {};
    var form = el("form", { className: "screen screen-form", "data-screen": "form", "data-action": schema.name, novalidate: true });
    form.appendChild(el("h2", { className: "step-title", text: meta.display_title || schema.step_title }));
    if (meta.display_description) form.appendChild(el("p", { className: "muted", text: meta.display_description }));
    form.appendChild(el("p", { className: "error", id: "form-errors", hidden: true }));

    var fields = {};
    schema.fields.forEach(function (f) { fields[f.name] = f; });
    var placed = {};
    (meta.field_groups || []).forEach(function (group) {
      var members = (group.field_names || []).filter(function (n) { return fields[n] && !placed[n]; });
      if (!members.length) return;
      var set = el("fieldset", { "data-group": group.display_title || "" }, [
        group.display_title ? el("legend", { text: group.display_title }) : null,
        group.display_description ? el("p", { className: "group-description", text: group.display_description }) : null,
      ]);
      members.forEach(function (n) { placed[n] = true; set.appendChild(buildField(fields[n])); });
      form.appendChild(set);
    });
    var rest = schema.fields.filter(function (f) { return !placed[f.name]; });
    if (rest.length) {
      var other = el("fieldset", { "data-group": "" }, [
        (meta.field_groups || []).length ? el("legend", { text: "Other details" }) : null,
      ]);
      rest.forEach(function (f) { other.appendChild(buildField(f)); });
      form.appendChild(other);
    }
    var button = el("button", { type: "submit", className: "button", id: "submit-action", text: "Submit" });
    form.appendChild(button);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      submit(form, schema, button);
    });
    return form;
  }

  function controlFor(f, id) {
    var type = f.type;
    if ((type === "choice" || type === "multiple choice") && f.choices) {
      var select = el("select", { id: id, name: f.name, multiple: type === "multiple choice" });
      if (type === "choice" && (!f.required || f.allow_blank || f.allow_null)) select.appendChild(el("option", { value: "", text: "—" }));
      else if (type === "choice") select.appendChild(el("option", { value: "", text: "Choose…", disabled: true, selected: f["default"] === undefined }));
      f.choices.forEach(function (c) {
        select.appendChild(el("option", { value: String(c.value), text: c.display_name, selected: f["default"] === c.value }));
      });
      return select;
    }
    if (type === "boolean") return el("input", { type: "checkbox", id: id, name: f.name, checked: f["default"] === true });
    if (type === "list" && f.child && f.child.choices) {
      var multi = el("select", { id: id, name: f.name, multiple: true });
      f.child.choices.forEach(function (c) { multi.appendChild(el("option", { value: String(c.value), text: c.display_name })); });
      return multi;
    }
    if (type === "list") return el("textarea", { id: id, name: f.name, rows: "3", placeholder: "One value per line" });
    if (type === "nested object" || type === "field") return el("textarea", { id: id, name: f.name, rows: "3", placeholder: "JSON" });
    var inputType = { integer: "number", float: "number", decimal: "number", email: "email", url: "url", date: "date",
      datetime: "datetime-local", time: "time" }[type] || "text";
    if (type === "string" && f.max_length && Number(f.max_length) > 200) {
      return el("textarea", { id: id, name: f.name, rows: "3", maxlength: f.max_length });
    }
    var input = el("input", { type: inputType, id: id, name: f.name, maxlength: f.max_length, min: f.min_value, max: f.max_value });
    if (type === "integer") input.step = "1";
    if (type === "float" || type === "decimal") input.step = "any";
    if (f["default"] !== undefined && f["default"] !== null) input.value = String(f["default"]);
    return input;
  }

  function buildField(f) {
    var id = "field-" + f.name;
    var config = f.display_config || {};
    var control = controlFor(f, id);
    var custom = config.display_component && window.DjangoBridgeComponents && window.DjangoBridgeComponents[config.display_component];
    if (custom) control = custom(f, control) || control;
    var wrapper = el("div", { className: "field", "data-field": f.name, "data-type": f.type, "data-component": config.display_component });
    var label = el("label", { "for": id }, [f.label || f.name]);
    if (f.required) label.appendChild(el("span", { className: "required", text: "*", title: "required" }));
    if (f.type === "boolean") {
      wrapper.appendChild(el("label", { "for": id }, [control, " ", f.label || f.name]));
    } else {
      wrapper.appendChild(label);
      wrapper.appendChild(control);
    }
    var help = config.display_help_text || f.help_text;
    if (help) wrapper.appendChild(el("p", { className: "help", text: help }));
    if (f.type === "list" && !help) wrapper.appendChild(el("p", { className: "help", text: "One value per line." }));
    wrapper.appendChild(el("p", { className: "error", hidden: true, "data-error-for": f.name }));
    return wrapper;
  }

  function readValue(form, f) {
    var node = form.elements[f.name];
    if (!node) return { skip: true };
    if (f.type === "boolean") return { value: node.checked };
    if (f.type === "multiple choice" || node.tagName === "SELECT" && node.multiple) {
      return { value: Array.prototype.filter.call(node.options, function (o) { return o.selected; }).map(function (o) { return o.value; }) };
    }
    var raw = node.value;
    if (raw === "" || raw === undefined) return f.required ? { value: "" } : { skip: true };
    if (f.type === "integer") return { value: /^-?\d+$/.test(raw.trim()) ? parseInt(raw, 10) : raw };
    if (f.type === "float") return { value: isNaN(Number(raw)) ? raw : Number(raw) };
    if (f.type === "list") {
      return { value: raw.split(/\r?\n|,/).map(function (s) { return s.trim(); }).filter(Boolean) };
    }
    if (f.type === "nested object" || f.type === "field") {
      try { return { value: JSON.parse(raw) }; } catch (e) { return { error: "Enter valid JSON." }; }
    }
    return { value: raw };
  }

  function clearErrors(form) {
    Array.prototype.forEach.call(form.querySelectorAll("[data-error-for]"), function (p) { p.hidden = true; p.textContent = ""; });
    Array.prototype.forEach.call(form.querySelectorAll(".field.has-error"), function (d) { d.classList.remove("has-error"); });
    var top = form.querySelector("#form-errors");
    top.hidden = true;
    top.textContent = "";
  }

  function showErrors(form, errors) {
    var loose = [];
    Object.keys(errors || {}).forEach(function (name) {
      var messages = [].concat(errors[name]).map(function (m) { return typeof m === "string" ? m : JSON.stringify(m); });
      var slot = form.querySelector('[data-error-for="' + name + '"]');
      if (slot) {
        slot.textContent = messages.join(" ");
        slot.hidden = false;
        slot.parentNode.classList.add("has-error");
      } else {
        loose.push((name === "non_field_errors" || name === "detail" ? "" : name + ": ") + messages.join(" "));
      }
    });
    if (loose.length) {
      var top = form.querySelector("#form-errors");
      top.textContent = loose.join(" ");
      top.hidden = false;
    }
  }

  function submit(form, schema, button) {
    clearErrors(form);
    var body = {};
    body[schema.run_field] = cfg.run_id;
    var local = {};
    schema.fields.forEach(function (f) {
      var read = readValue(form, f);
      if (read.error) local[f.name] = [read.error];
      else if (!read.skip) body[f.name] = read.value;
    });
    if (Object.keys(local).length) return showErrors(form, local);
    busy = true;
    button.disabled = true;
    button.textContent = "Submitting…";
    api(schema.url, { method: "POST", body: body })
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) { return { status: response.status, data: data }; });
      })
      .then(function (answer) {
        busy = false;
        button.disabled = false;
        button.textContent = "Submit";
        if (answer.status === 400) return showErrors(form, answer.data);
        if (answer.status === 200 || answer.status === 202) {
          lastKey = null;
          if (answer.data && answer.data.status && answer.data.current_step !== undefined) {
            renderScreen({ error: "" }, answer.data);
          }
          return refresh();
        }
        showErrors(form, { detail: [answer.data.detail || "The action was refused (HTTP " + answer.status + ")."] });
        if (answer.status === 409) schedule(0);
      })
      .catch(function (error) {
        busy = false;
        button.disabled = false;
        button.textContent = "Submit";
        showErrors(form, { detail: [error.message] });
      });
  }

  var showHiddenToggle = document.getElementById("show-hidden");
  if (showHiddenToggle) {
    showHiddenToggle.addEventListener("change", function () {
      renderHistory(lastSteps);
      if (lastEntries) {
        Array.prototype.forEach.call(document.querySelectorAll("#timeline tr.hidden-step"), function (row) {
          row.hidden = !showHidden();
        });
      }
    });
  }

  refresh();
})();
