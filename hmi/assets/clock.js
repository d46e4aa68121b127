// The header's clock: the time in the site's time zone (data-tz), ticking in the browser so
// that no request is made for it.
(function () {
  "use strict";
  function tick() {
    var el = document.getElementById("site-clock");
    if (el !== null) {
      var zone = el.getAttribute("data-tz") || "UTC";
      try {
        el.textContent = new Intl.DateTimeFormat("en-GB", {
          timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
          hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
          timeZoneName: "short",
        }).format(new Date());
      } catch (err) {
        el.textContent = new Date().toISOString();
      }
    }
  }
  setInterval(tick, 1000);
})();
