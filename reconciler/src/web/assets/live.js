// centossrv status page: live refresh, a progressive enhancement. Without this script every
// page works through links and forms. With it, a region marked data-live is fetched again
// and replaced whenever the server's event stream (/events) says something changed.
(function () {
  "use strict";
  var region = document.querySelector("[data-live]");
  if (!region || !window.EventSource || !window.fetch || !window.DOMParser) {
    return;
  }
  var status = document.getElementById("live-status");
  var busy = false;
  var again = false;

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    fetch(window.location.href, { headers: { Accept: "text/html" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (text) {
        var fresh = new DOMParser()
          .parseFromString(text, "text/html")
          .querySelector("[data-live]");
        if (fresh) {
          region.replaceWith(fresh);
          region = fresh;
          say("Updated at " + new Date().toLocaleTimeString() + ".");
        }
      })
      .catch(function () {
        say("Could not refresh; reload the page to see the latest state.");
      })
      .then(function () {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  var events = new EventSource("/events");
  events.addEventListener("open", function () {
    say("Live: this page refreshes when the fleet changes.");
  });
  events.addEventListener("changed", refresh);
  events.addEventListener("error", function () {
    say("Live refresh paused; retrying.");
  });
  window.addEventListener("pagehide", function () {
    events.close();
  });
})();
