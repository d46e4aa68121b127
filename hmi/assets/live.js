// Live values: every element with data-tag is kept current from the server's event stream
// (/live/stream?tags=...), which carries only the tags on the display and only when they change.
// When a display is replaced (navigation), the set of tags changes and the stream is reopened.
// Alarm changes arrive as an "alarms" event: the alarm banner's store is bumped so that the
// banner refreshes at once. window.hmiLive.lastUpdate records when each tag was last drawn
// (performance.now()), which the HMI benchmark reads.
(function () {
  "use strict";
  var source = null;
  var currentKey = "";
  var pendingScan = null;
  var live = (window.hmiLive = { lastUpdate: {}, updates: 0, alarmVersion: 0, connected: false });

  function watchedTags() {
    var seen = {};
    var nodes = document.querySelectorAll("[data-tag]");
    for (var i = 0; i < nodes.length; i++) {
      seen[nodes[i].getAttribute("data-tag")] = true;
    }
    return Object.keys(seen).sort();
  }

  function severityClass(el, severity) {
    el.classList.remove("q-good", "q-uncertain", "q-bad");
    el.classList.add("q-" + severity);
  }

  function apply(tag, wire) {
    var nodes = document.querySelectorAll('[data-tag="' + CSS.escape(tag) + '"]');
    for (var i = 0; i < nodes.length; i++) {
      var el = nodes[i];
      var role = el.getAttribute("data-live");
      if (role === "text") {
        if (el.textContent !== wire.v) el.textContent = wire.v;
      } else if (role === "quality") {
        el.textContent = wire.s === "good" ? "" : " " + wire.s.toUpperCase();
        el.title = wire.q;
      } else if (role === "state") {
        severityClass(el, wire.s);
        el.title = tag + ": " + wire.q;
      } else if (role === "words") {
        var text = wire.n === null ? "\u2014" : wire.n ? el.getAttribute("data-on") : el.getAttribute("data-off");
        if (el.textContent !== text) el.textContent = text;
        severityClass(el, wire.s);
        var abnormal = el.getAttribute("data-abnormal");
        el.classList.toggle("abnormal", abnormal !== null && wire.n !== null && String(wire.n ? 1 : 0) === abnormal);
      } else if (role === "bar") {
        var low = parseFloat(el.getAttribute("data-low"));
        var high = parseFloat(el.getAttribute("data-high"));
        var share = wire.n === null ? 0 : Math.max(0, Math.min(1, (wire.n - low) / (high - low)));
        el.style[el.getAttribute("data-size") || "height"] = (100 * share).toFixed(1) + "%";
      } else if (role === "marker") {
        el.classList.toggle("abnormal", wire.s !== "good");
      }
    }
    live.lastUpdate[tag] = performance.now();
  }

  function bumpAlarms(version) {
    live.alarmVersion = version;
    if (!(window.dash_clientside && window.dash_clientside.set_props)) return;
    try {
      window.dash_clientside.set_props("alarm-version", { data: version });
    } catch (err) {
      // Dash has not drawn the layout yet (the stream can be quicker): try again shortly.
      setTimeout(function () {
        if (live.alarmVersion === version) bumpAlarms(version);
      }, 250);
    }
  }

  function open() {
    pendingScan = null;
    var tags = watchedTags();
    var key = tags.join(",");
    if (source !== null && key === currentKey) return;
    if (source !== null) source.close();
    currentKey = key;
    source = new EventSource("/live/stream?tags=" + encodeURIComponent(key));
    source.addEventListener("values", function (event) {
      var changes = JSON.parse(event.data);
      for (var tag in changes) apply(tag, changes[tag]);
      live.updates += 1;
    });
    source.addEventListener("alarms", function (event) {
      bumpAlarms(JSON.parse(event.data));
    });
    source.onopen = function () {
      live.connected = true;
      document.body.classList.remove("stream-lost");
    };
    source.onerror = function () {
      live.connected = false;
      document.body.classList.add("stream-lost");
      // EventSource reconnects by itself; a 401 (session ended) closes it for good.
      if (source.readyState === EventSource.CLOSED) {
        fetch("/live/stream?tags=", { method: "HEAD" }).then(function (response) {
          if (response.status === 401) window.location.assign("/login");
        });
      }
    };
  }

  function schedule() {
    if (pendingScan === null) pendingScan = setTimeout(open, 50);
  }

  function start() {
    new MutationObserver(function (mutations) {
      for (var i = 0; i < mutations.length; i++) {
        var m = mutations[i];
        // Text this script writes into a live element is no new display.
        if (m.target.nodeType === 1 && m.target.hasAttribute("data-live")) continue;
        if (m.type === "childList" && (m.addedNodes.length || m.removedNodes.length)) {
          schedule();
          return;
        }
      }
    }).observe(document.body, { childList: true, subtree: true });
    schedule();
  }

  // After the load event: a stream opened while the page still loads would hold its load event
  // open in some browsers (and with it, anything waiting for the page to be ready).
  if (document.readyState === "complete") start();
  else window.addEventListener("load", start);
})();
