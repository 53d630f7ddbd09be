/* Carnet: draws each measurement chart of the page with uPlot (docs/MEASUREMENTS.md, "Trends").
   The data is in a <script type="application/json"> block next to each chart (data, not code: the CSP's
   script-src 'self' holds); the page is whole without this script: the summary and the data table say it all. */
(function () {
  "use strict";
  function fmt(v, decimals) { return v == null ? "–" : v.toFixed(decimals); }
  function chart(el) {
    var began = performance.now();
    var data = JSON.parse(document.getElementById(el.dataset.source).textContent);
    var two = data.v2 !== null;
    var day = new Intl.DateTimeFormat(data.lang, {timeZone: data.tz, day: "numeric", month: "short"});
    var hour = new Intl.DateTimeFormat(data.lang, {timeZone: data.tz, hour: "2-digit", minute: "2-digit"});
    var full = new Intl.DateTimeFormat(data.lang, {timeZone: data.tz, dateStyle: "short", timeStyle: "short"});
    var short = data.end - data.start <= 3 * 86400;
    function targets(u) {
      var ctx = u.ctx, left = u.bbox.left, width = u.bbox.width;
      ctx.save();
      if (data.low !== null || data.high !== null) {  // the target range: a shaded band
        var top = u.valToPos(data.high === null ? u.scales.y.max : data.high, "y", true);
        var bottom = u.valToPos(data.low === null ? u.scales.y.min : data.low, "y", true);
        ctx.fillStyle = "rgba(26, 127, 55, 0.14)";
        ctx.fillRect(left, Math.min(top, bottom), width, Math.abs(bottom - top));
      }
      data.lines.forEach(function (line) {  // blood pressure: one dashed threshold per curve
        var y = Math.round(u.valToPos(line.v, "y", true)) + 0.5;
        ctx.strokeStyle = line.color;
        ctx.lineWidth = 1.5 * devicePixelRatio;
        ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
        ctx.beginPath();
        ctx.moveTo(left, y);
        ctx.lineTo(left + width, y);
        ctx.stroke();
      });
      ctx.restore();
    }
    function valueOf(u, v) { return v == null ? "–" : fmt(v, data.decimals) + " " + data.unit; }
    var series = [{label: data.time, value: function (u, ts) { return ts == null ? "–" : full.format(ts * 1e3); }},
                  {label: data.label, stroke: data.colors[0], width: 1.5, value: valueOf}];
    var values = [data.t, data.v];
    if (two) {
      series.push({label: data.label2, stroke: data.colors[1], width: 1.5, value: valueOf});
      values.push(data.v2);
    }
    function size() {
      var w = Math.max(240, el.clientWidth);
      return {width: w, height: w < 600 ? 220 : 320};
    }
    var opts = Object.assign(size(), {
      scales: {x: {time: true, range: [data.start, data.end]},
               y: {range: function (u, mn, mx) {
                 var lo = Math.min(mn == null ? data.ymin : mn, data.ymin);
                 var hi = Math.max(mx == null ? data.ymax : mx, data.ymax);
                 var pad = (hi - lo) * 0.05 || 1;
                 return [lo - pad, hi + pad];
               }}},
      axes: [{stroke: "#222", values: function (u, splits) {
                return splits.map(function (ts) { return (short ? hour : day).format(ts * 1e3); });
              }},
             {stroke: "#222", size: 48}],
      series: series,
      cursor: {drag: {x: false, y: false}},
      hooks: {drawClear: [targets]}
    });
    var plot = new uPlot(opts, values, el);
    el.dataset.drawn = String(data.t.length);
    el.dataset.ms = (performance.now() - began).toFixed(1);  // parse + draw: what benchmarks/trend_page.py reads
    var pending = 0;
    window.addEventListener("resize", function () {
      cancelAnimationFrame(pending);
      pending = requestAnimationFrame(function () { plot.setSize(size()); });
    });
  }
  function all() {
    document.querySelectorAll(".trend-chart[data-source]").forEach(chart);
    document.documentElement.dataset.chartsDrawn = "1";
    document.documentElement.dataset.chartsAt = performance.now().toFixed(1);  // since the navigation began
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", all); } else { all(); }
})();
