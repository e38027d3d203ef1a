// The charts: one per room and quantity, drawn with uPlot from `GET /api/history`'s columnar
// answer. Per sensor a mean line and a min–max band; the legend under the chart is the shared
// tooltip (every sensor's values at the cursor); readings arriving live are folded into the
// last point, as the node's own minute buckets fold them.

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];
const HEIGHT_PX = 140;

/// The chart ranges the page offers, as `GET /api/history` takes them in `from`.
export const RANGES = {'1h': '-1h', '6h': '-6h', '24h': '-24h', '7d': '-7d', '30d': '-30d'};
const RANGE_MS = {'1h': 3_600_000, '6h': 21_600_000, '24h': 86_400_000, '7d': 604_800_000, '30d': 2_592_000_000};

function seriesKey(node, sensor) {
  return `${node}/${sensor}`;
}

function format(value, unit) {
  return value == null ? '–' : `${value.toFixed(1)} ${unit}`;
}

/// Whether a line holds so few points between `first` and `last` that they need dots.
function sparse(values, first, last) {
  let count = 0;
  for (let i = first; i <= last; i++) if (values[i] != null) count++;
  return count <= 60;
}

/// A point in the legend: the mean, then the range it covers.
function pointText(mean, min, max, unit) {
  if (mean == null) return '–';
  return min == null || max == null || min === max ? format(mean, unit)
    : `${format(mean, unit)} (${min.toFixed(1)}–${max.toFixed(1)})`;
}

/// One chart: a room's quantity over the chosen range.
export class Chart {
  constructor(figure, {room, quantity, unit, rangeName, nodeNames}) {
    this.figure = figure;
    this.defaultUnit = unit;
    this.room = room;
    this.quantity = quantity;
    this.rangeName = rangeName;
    this.nodeNames = nodeNames;
    this.plot = null;
    this.sensors = [];
    this.lastSeen = new Map();
  }

  /// Draws `answer` (a `GET /api/history` answer, restricted to this chart's series).
  show(answer, series, width) {
    this.width = width;
    this.step = answer.step_ms;
    this.unit = series[0]?.unit ?? this.defaultUnit;
    this.times = answer.times.map((t) => t / 1000);
    this.lastSeen = new Map();
    this.sensors = series.map((one) => ({
      key: seriesKey(one.node, one.sensor),
      sensor: one.sensor,
      node: one.node,
      count: one.count.slice(),
      min: one.min.slice(),
      mean: one.mean.slice(),
      max: one.max.slice(),
    }));
    this.build();
  }

  data() {
    const data = [this.times];
    for (const sensor of this.sensors) data.push(sensor.min, sensor.mean, sensor.max);
    return data;
  }

  build() {
    const width = Math.max(this.width ?? this.figure.clientWidth, 200);
    const unit = this.unit;
    const series = [{}];
    const bands = [];
    this.sensors.forEach((sensor, index) => {
      const color = COLORS[index % COLORS.length];
      const label = this.sensors.length > 1 ? `${sensor.sensor} (${this.nodeNames(sensor.node)})` : sensor.sensor;
      const first = series.length;
      // The band's edges stay out of the legend: the mean's entry gives all three.
      const edge = {stroke: 'transparent', width: 0, points: {show: false}, class: 'band-edge'};
      series.push(
        {...edge, label: `${label} min`},
        {label, stroke: color, width: 2, spanGaps: false,
          // Few readings (a node that just started): dots, since a lone point draws no line.
          points: {show: (u, index, first, last) => sparse(u.data[index], first, last), size: 5, fill: color},
          value: (u, v, seriesIndex, index) => pointText(v, u.data[seriesIndex - 1][index], u.data[seriesIndex + 1][index], unit)},
        {...edge, label: `${label} max`},
      );
      bands.push({series: [first + 2, first], fill: `${color}33`});
    });
    const options = {
      width,
      height: HEIGHT_PX,
      series,
      bands,
      cursor: {sync: {key: 'officemesh'}, points: {size: 6}},
      legend: {live: true},
      scales: {x: {time: true}},
      axes: [
        {stroke: 'currentColor', grid: {stroke: '#8884'}, ticks: {stroke: '#8884'}},
        {stroke: 'currentColor', grid: {stroke: '#8884'}, ticks: {stroke: '#8884'}, size: 56,
          values: (u, values) => values.map((v) => `${v} ${unit}`)},
      ],
    };
    if (this.plot) this.plot.destroy();
    this.figure.querySelector('.plot').replaceChildren();
    this.plot = new uPlot(options, this.data(), this.figure.querySelector('.plot'));
    // For whoever inspects the page (and the browser tests): the points drawn.
    this.figure.uplot = this.plot;
  }

  resize(width) {
    if (width === this.width) return;
    this.width = width;
    if (this.plot) this.plot.setSize({width: Math.max(this.width, 200), height: HEIGHT_PX});
  }

  /// Whether this chart draws the sensor `node`/`sensor`.
  has(node, sensor) {
    return this.sensors.some((one) => one.key === seriesKey(node, sensor));
  }

  /// Folds a reading the state brought (`measured_at_ms`, `value`) into the point of its
  /// time, appending a point when it starts a new one and dropping the points that slid out
  /// of the range. Each reading is taken once, by its time.
  addReading(node, sensor, measuredAtMs, value) {
    const key = seriesKey(node, sensor);
    if (!this.plot || !this.step) return false;
    if ((this.lastSeen.get(key) ?? 0) >= measuredAtMs) return false;
    let target = this.sensors.find((one) => one.key === key);
    let rebuild = false;
    if (!target) {
      // A sensor the history did not have yet (the node hands readings to its history every
      // few seconds): its line starts here.
      const empty = () => this.times.map(() => null);
      target = {key, sensor, node, count: this.times.map(() => 0), min: empty(), mean: empty(), max: empty()};
      this.sensors.push(target);
      rebuild = true;
    }
    this.lastSeen.set(key, measuredAtMs);
    const at = Math.floor(measuredAtMs / this.step) * this.step / 1000;
    let index = this.times.lastIndexOf(at);
    if (index < 0) {
      if (this.times.length && at < this.times[this.times.length - 1]) return false;
      this.times.push(at);
      for (const one of this.sensors) {
        one.count.push(0);
        one.min.push(null);
        one.mean.push(null);
        one.max.push(null);
      }
      index = this.times.length - 1;
      const oldest = (measuredAtMs - RANGE_MS[this.rangeName]) / 1000;
      while (this.times.length > 1 && this.times[0] < oldest) {
        this.times.shift();
        for (const one of this.sensors) {
          one.count.shift();
          one.min.shift();
          one.mean.shift();
          one.max.shift();
        }
        index -= 1;
      }
    }
    const count = target.count[index] ?? 0;
    target.min[index] = count ? Math.min(target.min[index], value) : value;
    target.max[index] = count ? Math.max(target.max[index], value) : value;
    target.mean[index] = count ? (target.mean[index] * count + value) / (count + 1) : value;
    target.count[index] = count + 1;
    if (rebuild) this.build();
    else this.plot.setData(this.data());
    return true;
  }

  /// Whether the loaded history already holds the point a reading at `measuredAtMs` of
  /// `node`/`sensor` falls in: then that reading is in it, and is not folded in again.
  holds(node, sensor, measuredAtMs) {
    const target = this.sensors.find((one) => one.key === seriesKey(node, sensor));
    if (!target || !this.step) return false;
    const at = Math.floor(measuredAtMs / this.step) * this.step / 1000;
    const index = this.times.lastIndexOf(at);
    return index >= 0 && target.count[index] > 0;
  }

  /// Remembers the readings the loaded history already holds, so they are not counted twice.
  markSeen(node, sensor, measuredAtMs) {
    const key = seriesKey(node, sensor);
    this.lastSeen.set(key, Math.max(this.lastSeen.get(key) ?? 0, measuredAtMs));
  }

  destroy() {
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }
}
