// Live progress on a financing page: each committed transition (Server-Sent Events from the console's own
// stream) updates the status badge, adds a timeline line and offers a reload for the new forms.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource) { return; }
  var shown = live.getAttribute("data-version");
  var source = new EventSource(live.getAttribute("data-events"));

  function text(tag, value) {
    var el = document.createElement(tag);
    el.textContent = value; // never innerHTML: labels come from the server but are treated as text
    return el;
  }

  // The page shows China time (UTC+8, no daylight saving), whatever the browser's own zone.
  function chinaTime(iso) {
    var ms = Date.parse(iso || "");
    return isNaN(ms) ? "" : new Date(ms + 8 * 3600 * 1000).toISOString().slice(0, 16).replace("T", " ");
  }

  function changed(data) {
    var status = document.getElementById("status");
    if (status && data.status_label) { status.textContent = data.status_label; }
    var notice = document.getElementById("live-notice");
    if (notice) {
      notice.textContent = "";
      notice.appendChild(document.createTextNode("状态已更新：" + (data.label || "") + " → " + data.status_label + "。"));
      var reload = text("a", "刷新页面");
      reload.href = window.location.pathname;
      notice.appendChild(reload);
      notice.hidden = false;
    }
    live.setAttribute("data-version", String(data.version));
  }

  source.addEventListener("snapshot", function (event) {
    var data = JSON.parse(event.data);
    if (String(data.version) !== shown) { changed(data); } // changed between rendering and subscribing
  });
  source.addEventListener("transition", function (event) {
    var data = JSON.parse(event.data);
    var timeline = document.getElementById("timeline");
    if (timeline) {
      var item = document.createElement("li");
      item.className = "new";
      item.appendChild(text("time", chinaTime(data.at)));
      item.appendChild(document.createTextNode(" "));
      item.appendChild(text("strong", data.label || data.action));
      item.appendChild(document.createTextNode(" → " + data.status_label));
      timeline.appendChild(item);
    }
    changed(data);
  });
})();
