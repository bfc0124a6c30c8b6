// Collects every error the page meets in window.__dashboardErrors (the browser tests assert it
// stays empty): uncaught errors, failed resource loads (a missing module shows up here),
// unhandled promise rejections and console.error calls. A classic script loaded before the
// modules, so it is in place before any of them runs.
(function () {
  "use strict";
  var errors = [];
  window.__dashboardErrors = errors;
  function describe(x) {
    try {
      if (x instanceof Error) return x.stack || String(x);
      if (typeof x === "string") return x;
      return JSON.stringify(x);
    } catch (_) {
      return String(x);
    }
  }
  window.addEventListener(
    "error",
    function (event) {
      if (event.error || event.message) {
        errors.push("error: " + describe(event.error || event.message));
      } else if (event.target && event.target !== window) {
        var t = event.target;
        errors.push("failed to load: " + (t.src || t.href || t.tagName));
      }
    },
    true
  );
  window.addEventListener("unhandledrejection", function (event) {
    errors.push("unhandled rejection: " + describe(event.reason));
  });
  var original = console.error;
  console.error = function () {
    errors.push("console.error: " + Array.prototype.map.call(arguments, describe).join(" "));
    return original.apply(console, arguments);
  };
})();
