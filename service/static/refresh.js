// Reload the page every `data-refresh-seconds` of the #updated line (the server renders the
// "updated HH:MM:SS" it shows), except while a form on the page has the focus or text typed
// into it: a reload would lose what the person is writing.
(function () {
  "use strict";
  var line = document.getElementById("updated");
  if (!line) { return; }
  var seconds = parseInt(line.getAttribute("data-refresh-seconds"), 10) || 60;
  var state = document.getElementById("refresh-state");

  function busyForm() {
    var focused = document.activeElement;
    if (focused && focused.form) { return true; }
    var fields = document.querySelectorAll("form input, form textarea");
    for (var i = 0; i < fields.length; i++) {
      var type = (fields[i].type || "").toLowerCase();
      if (type !== "hidden" && type !== "submit" && type !== "button" && fields[i].value !== "") {
        return true;
      }
    }
    return false;
  }

  function tick() {
    if (busyForm()) {
      if (state) { state.textContent = " · refresh paused while a form is in use"; }
      return;
    }
    window.location.reload();
  }

  if (state) { state.textContent = " · refreshes every " + seconds + " s"; }
  window.setInterval(tick, seconds * 1000);
}());
