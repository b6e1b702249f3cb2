"""The inline CSS and sorting script of the evaluation report (:mod:`cxrseg.evaluation.html`)."""

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;
color:#1d2430}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccd}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 8px;border-bottom:1px solid #e3e6ee;
text-align:right;vertical-align:middle}th{background:#f1f3f8}td.id,th.id{text-align:left}
table.sortable th{cursor:pointer}.meta td{text-align:left}.note{background:#fff6d9;padding:8px}
.flag{color:#b00;font-weight:bold}
.plots{display:flex;flex-wrap:wrap;gap:12px}.swatch{display:inline-block;width:12px;height:12px;
margin:0 4px 0 12px;vertical-align:middle}img.thumb{display:block}
table.inner{margin:0;font-size:12px}table.inner td,table.inner th{padding:1px 6px;border:0}
"""
SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var up = th.getAttribute("data-dir") !== "asc";
      th.setAttribute("data-dir", up ? "asc" : "desc");
      var body = table.tBodies[0];
      var key = function (row) {
        var cell = row.cells[col], v = cell.getAttribute("data-value");
        return v === null ? cell.textContent : parseFloat(v);
      };
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x === "number" && isNaN(x)) return 1;
        if (typeof y === "number" && isNaN(y)) return -1;
        var c = x < y ? -1 : x > y ? 1 : 0;
        return up ? c : -c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""
