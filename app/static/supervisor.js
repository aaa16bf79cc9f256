// Supervisor console: process diagrams (bpmn-js navigated viewer) with state markers and heat-map
// overlays, and the dashboard charts (ECharts). The pages' tables carry the same figures, so
// everything stays readable without this file.
(function () {
  "use strict";

  function readJson(selector) {
    var node = document.querySelector(selector);
    return node ? JSON.parse(node.textContent) : null;
  }

  // ------------------------------------------------------------------------------------------
  // Diagrams: one tab per BPMN file; a tab's viewer is created when it is first shown.

  function setUpDiagrams(root) {
    var data = readJson("[data-diagram-json]");
    if (!data || !data.diagrams.length || typeof window.BpmnJS !== "function") { return; }
    var canvasBox = root.querySelector("[data-canvas]");
    var errorBox = root.querySelector("[data-diagram-error]");
    var tabs = root.querySelectorAll("[role=tab]");
    var panes = {};

    function show(file) {
      tabs.forEach(function (tab) { tab.setAttribute("aria-selected", String(tab.dataset.file === file)); });
      Object.keys(panes).forEach(function (key) { panes[key].hidden = key !== file; });
      if (panes[file]) { return; }
      var diagram = data.diagrams.filter(function (item) { return item.file === file; })[0];
      var pane = document.createElement("div");
      pane.className = "sv-pane";
      pane.dataset.file = file;
      canvasBox.appendChild(pane);
      panes[file] = pane;
      var viewer = new window.BpmnJS({ container: pane });
      viewer.importXML(diagram.xml).then(function () {
        var canvas = viewer.get("canvas");
        var registry = viewer.get("elementRegistry");
        var overlays = viewer.get("overlays");
        var marks = data.markers[file] || {};
        Object.keys(marks).forEach(function (id) {
          if (!registry.get(id)) { return; }
          marks[id].forEach(function (cls) { canvas.addMarker(id, cls); });
        });
        var notes = data.overlays[file] || {};
        Object.keys(notes).forEach(function (id) {
          if (!registry.get(id)) { return; }
          var badge = document.createElement("div");
          badge.className = "sv-badge";
          badge.textContent = notes[id];
          overlays.add(id, "sv-heat", { position: { bottom: -6, left: 0 }, html: badge });
        });
        canvas.zoom("fit-viewport");
        pane.dataset.ready = "true";
        root.dataset.ready = "true";
      }).catch(function (err) {
        errorBox.hidden = false;
        if (window.console) { window.console.error(err); }
      });
    }

    tabs.forEach(function (tab) {
      tab.addEventListener("click", function () { show(tab.dataset.file); });
    });
    show(data.diagrams[0].file);
  }

  document.querySelectorAll("[data-diagram]").forEach(setUpDiagrams);

  // ------------------------------------------------------------------------------------------
  // Dashboard charts

  var PALETTE = ["#b22222", "#1d5fa8", "#2f7a3d", "#d08700", "#6b4fa8", "#0f7c86", "#8a4b00", "#616e7c"];

  function chartOptions(kind, data) {
    var t = data.texts;
    var grid = { left: 48, right: 16, top: 36, bottom: 48, containLabel: true };
    var legend = { top: 0 };
    var tooltip = { trigger: "axis" };
    switch (kind) {
      case "trend":
        return {
          color: PALETTE, grid: grid, legend: legend, tooltip: tooltip,
          xAxis: { type: "category", data: data.trend.labels },
          yAxis: { type: "value", minInterval: 1 },
          series: [
            { name: t.opened, type: "line", data: data.trend.opened },
            { name: t.closed, type: "line", data: data.trend.closed }
          ]
        };
      case "tiers":
        return {
          color: ["#2f7a3d"], grid: grid, tooltip: { trigger: "axis", valueFormatter: function (v) { return v == null ? "—" : v + "%"; } },
          xAxis: { type: "category", data: data.tiers.labels },
          yAxis: { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%" } },
          series: [{ name: t.rate, type: "bar", data: data.tiers.values, label: { show: true, position: "top", formatter: "{c}%" } }]
        };
      case "category":
      case "unit":
        var rows = data[kind];
        var series = [
          { name: t.opened, type: "bar", data: rows.map(function (r) { return r.opened; }) },
          { name: t.closed, type: "bar", data: rows.map(function (r) { return r.closed; }) }
        ];
        if (kind === "unit") {
          series.push({ name: t.overdue, type: "bar", data: rows.map(function (r) { return r.overdue; }) });
        }
        return {
          color: PALETTE, grid: grid, legend: legend, tooltip: tooltip,
          xAxis: { type: "category", data: rows.map(function (r) { return r.name; }), axisLabel: { interval: 0, rotate: rows.length > 6 ? 30 : 0 } },
          yAxis: { type: "value", minInterval: 1 },
          series: series
        };
      case "channel":
        return {
          color: PALETTE, tooltip: { trigger: "item" }, legend: { bottom: 0, type: "scroll" },
          series: [{ name: t.opened, type: "pie", radius: ["35%", "65%"], data: data.channel }]
        };
    }
    return null;
  }

  function setUpCharts() {
    var data = readJson("[data-charts-json]");
    if (!data || typeof window.echarts === "undefined") { return; }
    var charts = [];
    document.querySelectorAll("[data-chart]").forEach(function (box) {
      var options = chartOptions(box.dataset.chart, data);
      if (!options) { return; }
      var chart = window.echarts.init(box, null, { locale: data.locale === "EN" ? "EN" : "ZH", renderer: "canvas" });
      chart.setOption(options);
      box.dataset.ready = "true";
      charts.push(chart);
    });
    window.addEventListener("resize", function () { charts.forEach(function (chart) { chart.resize(); }); });
  }

  setUpCharts();
})();
