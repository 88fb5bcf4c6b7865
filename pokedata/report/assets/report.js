// poke report: table sorting and filtering, and the provenance panel of thumbnails.
// Plain DOM, no library. Data is only ever put into the page with textContent, never as HTML.
"use strict";
(function () {
  document.documentElement.classList.add("js");

  function cellValue(row, i) {
    var c = row.cells[i];
    if (!c) return "";
    var v = c.getAttribute("data-v");
    return v !== null ? parseFloat(v) : c.textContent.trim().toLowerCase();
  }

  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, i) {
      th.addEventListener("click", function () {
        var desc = th.getAttribute("aria-sort") !== "descending";
        Array.prototype.forEach.call(heads, function (o) { o.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", desc ? "descending" : "ascending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = cellValue(a, i), y = cellValue(b, i);
          var r = x < y ? -1 : x > y ? 1 : 0;
          return desc ? -r : r;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });

  document.querySelectorAll("input[data-filter]").forEach(function (input) {
    var table = document.getElementById(input.getAttribute("data-filter"));
    var count = document.getElementById(input.id + "-count");
    function apply() {
      var q = input.value.trim().toLowerCase(), shown = 0, rows = table.tBodies[0].rows;
      Array.prototype.forEach.call(rows, function (r) {
        var hit = !q || r.cells[0].textContent.toLowerCase().indexOf(q) >= 0;
        r.hidden = !hit;
        if (hit) shown++;
      });
      if (count) count.textContent = shown + " of " + rows.length;
    }
    input.addEventListener("input", apply);
    var q = new URLSearchParams(location.search).get("q");  // classes.html?q=pika: a linkable search
    if (q) input.value = q;
    apply();
  });

  var panel = document.getElementById("info");
  if (!panel) return;
  var list = panel.querySelector("dl");
  var LINKS = { page: 1, url: 1 };
  function show(fig) {
    var info;
    try { info = JSON.parse(fig.getAttribute("data-p") || "{}"); } catch (e) { return; }
    while (list.firstChild) list.removeChild(list.firstChild);
    Object.keys(info).forEach(function (k) {
      var dt = document.createElement("dt"), dd = document.createElement("dd"), v = String(info[k]);
      dt.textContent = k;
      if (LINKS[k] && /^https?:\/\//i.test(v)) {
        var a = document.createElement("a");
        a.href = v; a.textContent = v; a.rel = "noopener noreferrer nofollow"; a.target = "_blank";
        dd.appendChild(a);
      } else {
        dd.textContent = v;
      }
      list.appendChild(dt); list.appendChild(dd);
    });
    panel.hidden = false;
    document.querySelectorAll("figure.t.sel").forEach(function (f) { f.classList.remove("sel"); });
    fig.classList.add("sel");
  }
  document.addEventListener("click", function (e) {
    var fig = e.target.closest && e.target.closest("figure.t");
    if (fig) show(fig);
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") panel.hidden = true;
    if (e.key === "Enter" && document.activeElement && document.activeElement.matches("figure.t")) show(document.activeElement);
  });
  document.getElementById("info-close").addEventListener("click", function () { panel.hidden = true; });
  // class/x.html#img-123 (jumps to it) or ?img=123 (scrolls only if needed): opens that image's provenance
  var wanted = new URLSearchParams(location.search).get("img");
  var id = wanted ? "img-" + wanted : decodeURIComponent(location.hash.slice(1));
  var target = id && document.getElementById(id);
  if (target && target.matches("figure.t")) {
    show(target);
    if (wanted) target.scrollIntoView({ block: "nearest" });
  }
})();
