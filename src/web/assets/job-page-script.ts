/**
 * The job page's only script: follows the live log over Server-Sent Events, swaps in the summary
 * the server renders when the job changes, ticks the "running for" clock, and asks before Cancel.
 * Plain browser JavaScript (no build step); it never turns log text into markup (textContent only).
 */
export const JOB_PAGE_JS = `"use strict";
(function () {
  function duration(seconds) {
    var s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + " s";
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    if (h > 0) return m > 0 ? h + " h " + m + " min" : h + " h";
    return r > 0 ? m + " min " + r + " s" : m + " min";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-since]").forEach(function (el) {
      el.textContent = duration((now - Number(el.getAttribute("data-since"))) / 1000);
    });
  }
  setInterval(tick, 1000);

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("cancel")) return;
    if (!window.confirm("Stop this job? Its worker is destroyed and nothing more is pushed.")) {
      event.preventDefault();
      return;
    }
    var button = form.querySelector("button");
    setTimeout(function () { if (button) { button.disabled = true; button.textContent = "Cancelling…"; } }, 0);
  });

  var log = document.getElementById("log");
  if (!log || log.getAttribute("data-live") !== "true" || !window.EventSource) return;
  var live = document.getElementById("live");
  var after = log.getAttribute("data-after") || "0";
  var source = new EventSource(log.getAttribute("data-events") + "?after=" + encodeURIComponent(after));

  function nearBottom() {
    return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 80;
  }
  function ended() {
    source.close();
    if (live) { live.textContent = "ended"; live.classList.add("ended"); }
  }
  source.addEventListener("line", function (event) {
    var entry = JSON.parse(event.data);
    var follow = nearBottom();
    var empty = log.querySelector(".empty");
    if (empty) empty.remove();
    var row = document.createElement("div");
    row.className = "line stream-" + String(entry.stream).replace(/[^a-z]/g, "");
    row.id = "L" + entry.id;
    var time = document.createElement("time");
    time.textContent = new Date(entry.at).toISOString().slice(11, 19);
    var text = document.createElement("span");
    text.className = "text";
    text.textContent = entry.line;
    row.appendChild(time);
    row.appendChild(text);
    log.appendChild(row);
    if (follow) window.scrollTo(0, document.documentElement.scrollHeight);
  });
  source.addEventListener("job", function (event) {
    var job = JSON.parse(event.data);
    var summary = document.getElementById("summary");
    if (summary) summary.innerHTML = job.summary;
    document.title = job.title;
    tick();
  });
  source.addEventListener("end", ended);
  source.addEventListener("error", function () {
    // The browser reconnects by itself (sending Last-Event-ID); a 401 or 404 ends the stream for good.
    if (source.readyState === 2) ended();
  });
})();
`;
