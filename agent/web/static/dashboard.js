// updown dashboard: refresh <main> when the server says the journal or the live status changed.
// The pages work without this script; it only keeps them current (server-sent events).
(function () {
  "use strict";
  if (document.body.dataset.live !== "1" || !window.EventSource) { return; }
  var state = document.getElementById("live-state");
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(window.location.href, {headers: {"X-Updown-Refresh": "1"}, credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector("main");
        if (fresh) { document.querySelector("main").innerHTML = fresh.innerHTML; }
      })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  var source = new EventSource("/api/events");
  source.addEventListener("change", function () {
    if (state) { state.textContent = "live · updated " + new Date().toLocaleTimeString(); }
    refresh();
  });
  source.onerror = function () { if (state) { state.textContent = "reconnecting…"; } };
})();
