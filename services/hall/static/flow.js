// The flow page, live: each server-sent event carries every table's rows as JSON; the
// tables are filled again in place (textContent only: nothing from the stream becomes HTML).
// A column named in data-bar gets a <progress> bar scaled to the column's largest value, or
// to the row's data-bar-max column.
(function () {
  "use strict";
  var status = document.getElementById("flow-status");
  if (!status || !window.EventSource) { return; }
  var tables = {
    resources: "flow-resources", consumers: "flow-consumers", lag: "flow-lag",
    dead: "flow-dead", freshness: "flow-freshness"
  };

  function cell(table, column, row, scale) {
    var td = document.createElement("td");
    var value = row[column];
    if (column === "fresh") {
      value = row.age_s === null ? table.dataset.none : value ? table.dataset.yes : table.dataset.no;
      td.className = row[column] ? "ok" : "problem";
    }
    td.textContent = value === null || value === undefined ? "-" : String(value);
    if (column === table.dataset.bar && typeof row[column] === "number") {
      var bar = document.createElement("progress");
      var max = table.dataset.barMax ? row[table.dataset.barMax] : scale;
      bar.max = max > 0 ? max : 1;
      bar.value = Math.min(row[column], bar.max);
      td.appendChild(document.createTextNode(" "));
      td.appendChild(bar);
    }
    return td;
  }

  function fill(id, rows) {
    var table = document.getElementById(id);
    if (!table) { return; }
    var columns = table.dataset.cols.split(",");
    var scale = 1;
    rows.forEach(function (r) { scale = Math.max(scale, Number(r[table.dataset.bar]) || 0); });
    var body = document.createElement("tbody");
    rows.forEach(function (row) {
      var tr = document.createElement("tr");
      columns.forEach(function (c) { tr.appendChild(cell(table, c, row, scale)); });
      body.appendChild(tr);
    });
    table.replaceChild(body, table.tBodies[0]);
  }

  var source = new EventSource(status.dataset.stream);
  source.onmessage = function (event) {
    var figures = JSON.parse(event.data);
    Object.keys(tables).forEach(function (key) { fill(tables[key], figures[key] || []); });
    status.textContent = status.dataset.live + " " + new Date().toLocaleTimeString();
    status.dataset.updates = String(Number(status.dataset.updates || "0") + 1);
  };
  source.onerror = function () { status.textContent = status.dataset.lost; };
})();
