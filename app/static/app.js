// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";

  // Repeatable fieldsets (e.g. the parties of a dispute): the server always renders one empty
  // row at the end; "add" clones it with the next index, "remove" drops a row.
  function reindex(row, index) {
    row.dataset.index = String(index);
    row.querySelectorAll("[name], [id], [for], [aria-describedby]").forEach(function (el) {
      ["name", "id", "for", "aria-describedby"].forEach(function (attr) {
        var value = el.getAttribute(attr);
        if (value) {
          el.setAttribute(attr, value.replace(/([.-])\d+([.-])/, "$1" + index + "$2"));
        }
      });
    });
  }

  document.querySelectorAll("fieldset[data-repeat]").forEach(function (group) {
    var rows = function () { return group.querySelectorAll(":scope > fieldset.item"); };
    var all = rows();
    if (!all.length) { return; }
    var template = all[all.length - 1].cloneNode(true);
    rows().forEach(function (row) { enhance(row); });

    function enhance(row) {
      var box = row.querySelector("label.remove");
      if (!box) { return; }
      var button = document.createElement("button");
      button.type = "button";
      button.className = "secondary small";
      button.textContent = box.textContent.trim();
      button.addEventListener("click", function () {
        var input = box.querySelector("input");
        input.checked = true;
        row.hidden = true;
      });
      box.hidden = true;
      row.appendChild(button);
    }

    var add = document.createElement("button");
    add.type = "button";
    add.className = "secondary small add-row";
    add.textContent = document.documentElement.lang === "en" ? "Add another" : "再添加一行";
    add.addEventListener("click", function () {
      var next = 0;
      rows().forEach(function (row) { next = Math.max(next, Number(row.dataset.index) + 1); });
      var row = template.cloneNode(true);
      row.hidden = false;
      row.querySelectorAll("input, select, textarea").forEach(function (el) {
        if (el.type === "checkbox" || el.type === "radio") { el.checked = false; } else { el.value = ""; }
      });
      reindex(row, next);
      var legend = row.querySelector("legend");
      if (legend) { legend.textContent = legend.textContent.replace(/\d+.*$/, String(next + 1)); }
      group.insertBefore(row, add);
      enhance(row);
    });
    var last = rows()[rows().length - 1];
    last.parentNode.insertBefore(add, last.nextSibling);
  });

  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
})();
