// The script inside the timeline page (plain browser JavaScript, kept as text so the page stays one
// file): reads the JSON that timeline-data.ts made and draws two SVG charts per plan, on one
// x axis (schedule positions): the live bytes stacked by category, with the peak marked, and every
// buffer as a bar from its first to its last position at its address. No template literals here:
// this text is itself inside one.
export const timelineScript = String.raw`
(function () {
  'use strict';
  var NS = 'http://www.w3.org/2000/svg';
  var data = JSON.parse(document.getElementById('lomoc-timeline-data').textContent);
  var W = 1280, L = 78, R = 16;
  var stackOrder = ['params', 'optimizerState', 'grads', 'activations', 'workspace'];
  var catIndex = {};
  data.categories.forEach(function (c, i) { catIndex[c.key] = i; });

  function el(tag, attrs, parent, text) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function size(n) {
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return i === 0 ? n + ' B' : n.toFixed(2) + ' ' + units[i];
  }
  // Round tick steps (1, 2, 5 x 2^k bytes in the unit that fits) for an axis up to max bytes.
  function ticks(max, count) {
    var unit = 1;
    while (max / unit >= 1024 && unit < Math.pow(1024, 4)) unit *= 1024;
    var raw = max / unit / count, p = Math.pow(10, Math.floor(Math.log10(raw))), step = p;
    [1, 2, 2.5, 5, 10].some(function (m) { step = m * p; return raw <= step; });
    var out = [];
    for (var v = 0; v <= max / unit + 1e-9; v += step) out.push(v * unit);
    return out;
  }
  // Round steps of 1, 2 or 5 x 10^k for the positions.
  function countTicks(max, count) {
    var raw = max / count, p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1)))), step = p, out = [];
    [1, 2, 5, 10].some(function (m) { step = m * p; return raw <= step; });
    for (var v = 0; v <= max; v += step) out.push(v);
    return out;
  }
  function xAxis(svg, s, x, y0, y1) {
    countTicks(s.steps, 12).forEach(function (p) {
      el('line', { x1: x(p), x2: x(p), y1: y0, y2: y1, class: 'grid' }, svg);
      el('text', { x: x(p), y: y1 + 13, 'text-anchor': 'middle' }, svg, String(Math.round(p)));
    });
    el('text', { x: W - R, y: y1 + 26, 'text-anchor': 'end' }, svg, 'schedule position (node index)');
  }
  function yAxis(svg, max, y, x0, x1) {
    ticks(max, 5).forEach(function (b) {
      el('line', { x1: x0, x2: x1, y1: y(b), y2: y(b), class: 'grid' }, svg);
      el('text', { x: x0 - 6, y: y(b) + 4, 'text-anchor': 'end' }, svg, size(b));
    });
  }

  // hide: leave out what lives for the whole step (params, optimizer states) to see what changes.
  function drawArea(host, s, readout, hide) {
    var H = 250, T = 24, B = 34, strip = 9;
    host.textContent = '';
    var svg = el('svg', { viewBox: '0 0 ' + W + ' ' + (T + H + strip + B), class: 'area-chart', role: 'img' }, host);
    var x = function (p) { return L + (p / s.steps) * (W - L - R); };
    var shown = stackOrder.filter(function (key) { return !(hide && (key === 'params' || key === 'optimizerState')); });
    var stacked = function (c) { return shown.reduce(function (a, key) { return a + c[catIndex[key] + 1]; }, 0); };
    var max = Math.max(hide ? Math.max.apply(null, s.live.map(stacked)) : s.peak, 1) * 1.06;
    var y = function (b) { return T + H - (b / max) * H; };
    yAxis(svg, max, y, L, W - R);
    xAxis(svg, s, x, T, T + H + strip + 4);
    var cols = s.live, lower = cols.map(function () { return 0; });
    shown.forEach(function (key) {
      var k = catIndex[key] + 1, top = [], bottom = [];
      cols.forEach(function (c, i) {
        var x0 = x(c[0]), x1 = x(i + 1 < cols.length ? cols[i + 1][0] : s.steps), hi = lower[i] + c[k];
        top.push(x0.toFixed(1) + ',' + y(hi).toFixed(1), x1.toFixed(1) + ',' + y(hi).toFixed(1));
        bottom.unshift(x1.toFixed(1) + ',' + y(lower[i]).toFixed(1), x0.toFixed(1) + ',' + y(lower[i]).toFixed(1));
        lower[i] = hi;
      });
      el('path', { d: 'M' + top.concat(bottom).join('L') + 'Z', fill: data.categories[k - 1].color, class: 'layer layer-' + key }, svg);
    });
    s.phaseRuns.forEach(function (r) {
      el('rect', { x: x(r[1]), y: T + H + 3, width: Math.max(x(r[2] + 1) - x(r[1]), 0.5), height: strip - 3,
        fill: data.phaseColors[r[0]] }, svg);
    });
    el('line', { x1: L, x2: W - R, y1: T + H, y2: T + H, class: 'axis' }, svg);
    // The peak: a dashed line through the position, a dot on top of the stack, and its label.
    var atPeak = s.live.filter(function (c) { return c[0] === s.peakAt; })[0];
    var px = x(s.peakAt + 0.5), py = y(atPeak ? stacked(atPeak) : s.peakLive);
    el('line', { x1: px, x2: px, y1: T - 6, y2: T + H, class: 'peakline' }, svg);
    el('circle', { cx: px, cy: py, r: 4, fill: '#1d2330' }, svg);
    var right = px > W / 2;
    el('text', { x: px + (right ? -8 : 8), y: T + 4, 'text-anchor': right ? 'end' : 'start', class: 'peaklabel' }, svg,
      'peak ' + size(s.peakLive) + ' at ' + s.peakAt + ': ' + s.peakNode);
    var cursor = el('line', { x1: 0, x2: 0, y1: T, y2: T + H, class: 'cursor', visibility: 'hidden' }, svg);
    svg.addEventListener('mousemove', function (ev) {
      var pt = svg.createSVGPoint();
      pt.x = ev.clientX; pt.y = ev.clientY;
      var p = pt.matrixTransform(svg.getScreenCTM().inverse());
      var pos = ((p.x - L) / (W - L - R)) * s.steps, i = 0;
      while (i + 1 < cols.length && cols[i + 1][0] <= pos) i++;
      var c = cols[i], total = 0;
      var parts = data.categories.map(function (cat, k) { total += c[k + 1]; return cat.label.replace(/ \(.*/, '') + ' ' + size(c[k + 1]); });
      cursor.setAttribute('x1', x(c[0] + 0.5)); cursor.setAttribute('x2', x(c[0] + 0.5));
      cursor.setAttribute('visibility', 'visible');
      readout.textContent = 'position ' + c[0] + ': ' + s.labels[s.liveNode[i]] + ' | live ' + size(total) + ' = ' + parts.join(', ');
    });
  }

  function drawBuffers(host, s) {
    var H = 400, T = 10, B = 34;
    var svg = el('svg', { viewBox: '0 0 ' + W + ' ' + (T + H + B), class: 'buffer-chart', role: 'img' }, host);
    var x = function (p) { return L + (p / s.steps) * (W - L - R); };
    var max = Math.max(s.peak, 1);
    var y = function (b) { return T + H - (b / max) * H; };
    yAxis(svg, max, y, L, W - R);
    xAxis(svg, s, x, T, T + H);
    var base = 0;
    s.arenas.forEach(function (a, i) {
      if (i > 0) el('line', { x1: L, x2: W - R, y1: y(base), y2: y(base), stroke: '#c9ced8', 'stroke-width': 0.5 }, svg);
      base += a;
    });
    var b = s.buffers, cats = data.categories;
    for (var i = 0; i < b.start.length; i++) {
      var live = b.start[i] <= s.peakAt && s.peakAt <= b.end[i];
      var g = el('g', { class: 'buf', fill: cats[b.category[i]].color, 'fill-opacity': live ? 0.95 : 0.4 }, svg);
      el('title', {}, g, b.name[i] + ' = ' + s.labels[b.what[i]] + '\n' + cats[b.category[i]].label + ', ' + size(b.bytes[i]) +
        '\nlive from position ' + b.start[i] + ' to ' + b.end[i] + (live ? ' (live at the peak)' : ''));
      var x0 = x(b.start[i]), w = Math.max(x(b.end[i] + 1) - x0, 0.8), pieces = b.pieces[i];
      for (var k = 0; k < pieces.length; k += 2) {
        var h = (pieces[k + 1] / max) * H;
        el('rect', { x: x0.toFixed(1), y: y(pieces[k] + pieces[k + 1]).toFixed(2), width: w.toFixed(1), height: Math.max(h, 0.6).toFixed(2),
          stroke: h > 4 ? '#fff' : 'none', 'stroke-width': 0.4 }, g);
      }
    }
    el('line', { x1: x(s.peakAt + 0.5), x2: x(s.peakAt + 0.5), y1: T, y2: T + H, class: 'peakline' }, svg);
    el('text', { x: L - 6, y: T + H + 26, 'text-anchor': 'end' }, svg, 'address');
  }

  document.querySelectorAll('section[data-index]').forEach(function (sec) {
    var s = data.sections[Number(sec.getAttribute('data-index'))];
    var area = sec.querySelector('.chart.area'), readout = sec.querySelector('.readout'), hide = sec.querySelector('input.hide');
    drawArea(area, s, readout, false);
    hide.addEventListener('change', function () { drawArea(area, s, readout, hide.checked); });
    drawBuffers(sec.querySelector('.chart.buffers'), s);
  });
  document.body.setAttribute('data-rendered', String(data.sections.length));
})();
`;
