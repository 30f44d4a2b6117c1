// Live refresh, as progressive enhancement: every page works without this script (its Reload link shows changes).
// A page that shows the policy's files (marked data-live) reloads itself when the server reports a changed file.
(function () {
  "use strict";
  var source = document.body.getAttribute("data-events");
  if (!source || !window.EventSource || !document.querySelector("[data-live]")) {
    return;
  }
  var events = new EventSource(source);
  events.addEventListener("change", function () {
    events.close();
    window.location.reload();
  });
  window.addEventListener("pagehide", function () { events.close(); });
})();
