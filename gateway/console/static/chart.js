// A loss chart in plain SVG: a few series of (step, value) points on shared axes, redrawn as points arrive.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 900;
const HEIGHT = 340;
const PAD = { left: 52, right: 16, top: 16, bottom: 36 };

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function ticks(low, high, count = 5) {
  if (high === low) return [low];
  const step = (high - low) / (count - 1);
  return Array.from({ length: count }, (_, index) => low + index * step);
}

function label(value) {
  return Math.abs(value) >= 100 || Number.isInteger(value) ? String(Math.round(value)) : value.toPrecision(3);
}

// series: [{name, className, points: [[x, y], ...], dots: bool}]
export function lineChart(series, { xLabel = "step", yLabel = "loss", xMax } = {}) {
  const root = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart", role: "img" });
  const all = series.flatMap((s) => s.points);
  root.append(svg("title", {}, `${yLabel} by ${xLabel}`));
  if (!all.length) {
    root.append(svg("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "axis" }, "No metrics yet"));
    return root;
  }
  const xs = all.map(([x]) => x);
  const ys = all.map(([, y]) => y);
  const [x0, x1] = [Math.min(1, ...xs), Math.max(xMax || 0, ...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const margin = (y1 - y0) * 0.05 || Math.abs(y1) * 0.05 || 1;
  [y0, y1] = [Math.max(0, y0 - margin), y1 + margin];
  const px = (x) => PAD.left + ((x - x0) / (x1 - x0 || 1)) * (WIDTH - PAD.left - PAD.right);
  const py = (y) => HEIGHT - PAD.bottom - ((y - y0) / (y1 - y0 || 1)) * (HEIGHT - PAD.top - PAD.bottom);

  for (const y of ticks(y0, y1)) {
    root.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: py(y), y2: py(y), class: "grid" }));
    root.append(svg("text", { x: PAD.left - 6, y: py(y) + 4, "text-anchor": "end", class: "axis" }, label(y)));
  }
  for (const x of ticks(x0, x1).map(Math.round).filter((x, i, all) => all.indexOf(x) === i)) {
    root.append(svg("text", { x: px(x), y: HEIGHT - PAD.bottom + 16, "text-anchor": "middle", class: "axis" }, label(x)));
  }
  root.append(svg("text", { x: WIDTH / 2, y: HEIGHT - 4, "text-anchor": "middle", class: "axis" }, xLabel));

  series.forEach((s, index) => {
    if (!s.points.length) return;
    const group = svg("g", { class: `series ${s.className}`, "data-series": s.name, "data-points": s.points.length });
    const path = s.points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" ");
    if (!s.dots) group.append(svg("polyline", { points: path }));
    if (s.dots || s.points.length === 1) {
      for (const [x, y] of s.points) group.append(svg("circle", { cx: px(x), cy: py(y), r: 3.5 }));
    }
    const legendX = PAD.left + 8 + index * 150;
    group.append(svg("rect", { x: legendX, y: PAD.top - 4, width: 12, height: 4 }));
    group.append(svg("text", { x: legendX + 16, y: PAD.top, class: "legend" }, s.name));
    root.append(group);
  });
  return root;
}
