// The header's clock: the center's time (data-center-ms when the page was drawn, running
// data-speed times as fast as the wall clock: the demo's clock may be simulated) in the site's
// time zone (data-tz), ticking in the browser so that no request is made for it.
(function () {
  "use strict";
  function tick() {
    var el = document.getElementById("site-clock");
    if (el !== null) {
      var zone = el.getAttribute("data-tz") || "UTC";
      if (!el.hasAttribute("data-drawn-at")) el.setAttribute("data-drawn-at", String(Date.now()));
      var centerMs = parseFloat(el.getAttribute("data-center-ms"));
      var speed = parseFloat(el.getAttribute("data-speed") || "1");
      var drawnAt = parseFloat(el.getAttribute("data-drawn-at"));
      var shown = isNaN(centerMs) ? new Date() : new Date(centerMs + (Date.now() - drawnAt) * speed);
      try {
        el.textContent = new Intl.DateTimeFormat("en-GB", {
          timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
          hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
          timeZoneName: "short",
        }).format(shown);
      } catch (err) {
        el.textContent = shown.toISOString();
      }
    }
  }
  setInterval(tick, 1000);
})();
