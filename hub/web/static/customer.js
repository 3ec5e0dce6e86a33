// Counts the seconds to the next code down; the page reloads itself (meta
// refresh) when the code changes, also without this script.
(function () {
  var el = document.getElementById("countdown");
  if (!el) return;
  var left = parseInt(el.getAttribute("data-left"), 10);
  var text = el.textContent;
  var start = Date.now();
  function tick() {
    var now = left - Math.floor((Date.now() - start) / 1000);
    if (now <= 0) { location.reload(); return; }
    el.textContent = text.replace(String(left), String(now));
    setTimeout(tick, 1000 - ((Date.now() - start) % 1000));
  }
  setTimeout(tick, 1000);
})();
