// The alarm list's optional sound: when the count of unacknowledged high and critical alarms
// rises while "Sound" is ticked, a short two-tone chime is generated in the browser (WebAudio
// oscillator): no audio file is fetched from anywhere. The choice itself is kept by the browser
// (localStorage, through the checkbox's persistence).
(function () {
  "use strict";
  var state = (window.hmiAlarmSound = { last: null, played: 0 });
  var audio = null;

  function chime() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    if (audio === null) audio = new Context();
    var start = audio.currentTime;
    [880, 660].forEach(function (frequency, i) {
      var oscillator = audio.createOscillator();
      var gain = audio.createGain();
      oscillator.type = "sine";
      oscillator.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, start + i * 0.25);
      gain.gain.exponentialRampToValueAtTime(0.3, start + i * 0.25 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + i * 0.25 + 0.22);
      oscillator.connect(gain).connect(audio.destination);
      oscillator.start(start + i * 0.25);
      oscillator.stop(start + i * 0.25 + 0.24);
    });
    state.played += 1;
  }

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    hmiAlarms: {
      sound: function (count, enabled) {
        var on = Array.isArray(enabled) && enabled.indexOf("on") >= 0;
        var rose = state.last !== null && typeof count === "number" && count > state.last;
        if (typeof count === "number") state.last = count;
        if (on && rose) {
          try {
            chime();
          } catch (err) {
            // A browser that refuses audio (no user gesture yet) still shows the alarms.
          }
        }
        return on ? "Sound on" : "";
      },
    },
  });
})();
