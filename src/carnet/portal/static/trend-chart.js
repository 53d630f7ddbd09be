/* Carnet: draws each measurement chart of the page with uPlot (docs/MEASUREMENTS.md, "Trends").
   The data is in a <script type="application/json"> block next to each chart (data, not code: the CSP's
   script-src 'self' holds); the page is whole without this script: the summary and the data table say it all. */
(function () {
  "use strict";
  function fmt(v, decimals) { return v == null ? "–" : v.toFixed(decimals); }
  function chart(el) {
    var data = JSON.parse(document.getElementById(el.dataset.source).textContent);
    var two = data.v2 !== null;
    var band = function (u) {
      if (data.low === null && data.high === null) { return; }
      var ctx = u.ctx, top = u.valToPos(data.high === null ? u.scales.y.max : data.high, "y", true);
      var bottom = u.valToPos(data.low === null ? u.scales.y.min : data.low, "y", true);
      ctx.save();
      ctx.fillStyle = "rgba(26, 127, 55, 0.14)";
      ctx.fillRect(u.bbox.left, Math.min(top, bottom), u.bbox.width, Math.abs(bottom - top));
      ctx.restore();
    };
    var series = [{}, {label: data.label, stroke: "#0b57a4", width: 1.5,
                       value: function (u, v) { return fmt(v, data.decimals) + " " + data.unit; }}];
    var values = [data.t, data.v];
    if (two) {
      series.push({label: data.label2, stroke: "#a4360b", width: 1.5,
                   value: function (u, v) { return fmt(v, data.decimals) + " " + data.unit; }});
      values.push(data.v2);
    }
    var lo = data.ymin, hi = data.ymax;
    function size() {
      var w = Math.max(240, el.clientWidth);
      return {width: w, height: w < 600 ? 220 : 320};
    }
    var opts = Object.assign(size(), {
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), data.tz); },
      scales: {x: {time: true, min: data.start, max: data.end},
               y: {range: function (u, mn, mx) { return [Math.min(mn, lo), Math.max(mx, hi)]; }}},
      axes: [{stroke: "#222"}, {stroke: "#222", size: 48}],
      series: series,
      points: {show: false},
      cursor: {drag: {x: false, y: false}},
      hooks: {drawClear: [band]}
    });
    var plot = new uPlot(opts, values, el);
    el.dataset.drawn = String(data.t.length);
    var pending = 0;
    window.addEventListener("resize", function () {
      cancelAnimationFrame(pending);
      pending = requestAnimationFrame(function () { plot.setSize(size()); });
    });
  }
  function all() {
    document.querySelectorAll(".trend-chart[data-source]").forEach(chart);
    document.documentElement.dataset.chartsDrawn = "1";
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", all); } else { all(); }
})();
