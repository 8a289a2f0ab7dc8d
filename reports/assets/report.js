// parity reports: table sorting and filtering, inlined into every HTML report (reports/html_page.cpp).
// Everything else (tables, charts) is static HTML and SVG: a report reads the same without scripts.
"use strict";
(function () {
  function cellValue(row, index, type) {
    const cell = row.cells[index];
    if (!cell) return null;
    const raw = cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent.trim();
    if (raw === "") return null;  // not applicable (e.g. rel_l2 of a top-k index hook): always last
    if (type !== "num") return raw.toLowerCase();
    const x = parseFloat(raw);
    return Number.isNaN(x) ? Infinity : x;  // NaN sorts last ascending: it is the worst value
  }

  function sortBy(table, th) {
    const index = Array.prototype.indexOf.call(th.parentNode.cells, th);
    const type = th.getAttribute("data-type");
    const ascending = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th[aria-sort]").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const body = table.tBodies[0];
    const rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      const x = cellValue(a, index, type), y = cellValue(b, index, type);
      if (x === null || y === null) return (x === null) - (y === null);
      const order = x < y ? -1 : x > y ? 1 : 0;
      return ascending ? order : -order;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }

  function applyFilters(tableId) {
    const table = document.getElementById(tableId);
    const text = document.querySelector('input.filter[data-table="' + tableId + '"]');
    const selects = document.querySelectorAll('select.filter[data-table="' + tableId + '"]');
    const needle = text ? text.value.trim().toLowerCase() : "";
    let shown = 0;
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      let visible = !needle || row.textContent.toLowerCase().indexOf(needle) >= 0;
      selects.forEach(function (s) {
        if (s.value && row.getAttribute("data-" + s.getAttribute("data-key")) !== s.value) visible = false;
      });
      row.hidden = !visible;
      if (visible) shown++;
    });
    const count = document.querySelector('.shown[data-table="' + tableId + '"]');
    if (count) count.textContent = shown + " of " + table.tBodies[0].rows.length + " rows";
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.sortable").forEach(function (table) {
      table.querySelectorAll("th[data-type]").forEach(function (th) {
        th.addEventListener("click", function () { sortBy(table, th); });
      });
    });
    document.querySelectorAll(".filter[data-table]").forEach(function (control) {
      const id = control.getAttribute("data-table");
      control.addEventListener("input", function () { applyFilters(id); });
      control.addEventListener("change", function () { applyFilters(id); });
      applyFilters(id);
    });
  });
})();
