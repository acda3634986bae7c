/**
 * Counters, gauges and histograms with Prometheus text exposition (format 0.0.4). A `Registry` is
 * created by `main.ts` and passed down; there is no global registry. Label values must come from a
 * bounded set (`result`, `reason`), never a namespace or a ServiceAccount name.
 *
 * @module
 */

/** Label set of one sample. */
export type Labels = Readonly<Record<string, string>>;

/** A monotonically increasing count. */
export interface Counter {
  /** Add `by` (default 1) to the series of `labels`; a negative `by` throws `RangeError`. */
  inc(labels?: Labels, by?: number): void;
  /** Current value for `labels`, for tests. */
  value(labels?: Labels): number;
  /** Sum over every series whose labels include all of `match` (all series without it). */
  sum(match?: Labels): number;
}

/** One sample of a {@linkcode Registry.collector} family: its labels (or none) and value. */
export type Sample = readonly [labels: Labels | undefined, value: number];

/** A value that goes up and down. */
export interface Gauge {
  /** Set the series of `labels` to `value`. */
  set(value: number, labels?: Labels): void;
  /** Value for `labels` (a collector's reading when unlabelled); 0 when never set. */
  value(labels?: Labels): number;
}

/** A distribution of observations in fixed buckets. */
export interface Histogram {
  /** Add `value` (in the family's unit, e.g. seconds) to its bucket, the sum and the count. */
  observe(value: number, labels?: Labels): void;
  /** Number of observations for `labels`, for tests. */
  count(labels?: Labels): number;
}

interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: "counter" | "gauge" | "histogram";
  /** Leave HELP/TYPE out too when there is no sample (a collector that could not read). */
  readonly omitWhenEmpty?: boolean;
  render(): string[];
}

function labelKey(labels: Labels | undefined): string {
  if (!labels) return "";
  const keys = Object.keys(labels).sort();
  return keys.map((k) => `${k}="${escapeLabel(labels[k] ?? "")}"`).join(",");
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function fmt(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

function braces(key: string): string {
  return key ? `{${key}}` : "";
}

/** Default latency buckets in seconds, tuned for a service that should answer in milliseconds. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
];

/**
 * A set of metric families that renders as one Prometheus text page. The registry owns the names
 * (unique, valid) and the page; each kind of family keeps its own samples (`counterFamily`
 * and its neighbours below).
 *
 * @example
 * ```ts
 * import { Registry } from "./metrics.ts";
 * const reg = new Registry();
 * const c = reg.counter("demo_total", "Demo.");
 * c.inc({ result: "allowed" });
 * console.assert(reg.render().includes('demo_total{result="allowed"} 1'));
 * ```
 */
export class Registry {
  #families = new Map<string, Family>();

  #add<M>({ family, metric }: { family: Family; metric: M }): M {
    if (this.#families.has(family.name)) {
      throw new TypeError(`Metric "${family.name}" is already registered`);
    }
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(family.name)) {
      throw new TypeError(`Metric name "${family.name}" is not valid`);
    }
    this.#families.set(family.name, family);
    return metric;
  }

  /** Whether a family named `name` is registered. */
  has(name: string): boolean {
    return this.#families.has(name);
  }

  /** Register a counter. */
  counter(name: string, help: string): Counter {
    return this.#add(counterFamily(name, help));
  }

  /**
   * Register a family whose samples are computed at render time (process figures, aliases of
   * other families under the names a dashboard expects). A `collect` that throws or returns no
   * samples leaves the family out of the page rather than exporting a made-up value.
   */
  collector(
    name: string,
    help: string,
    type: "counter" | "gauge",
    collect: () => Iterable<Sample>,
  ): void {
    this.#add(collectorFamily(name, help, type, collect));
  }

  /**
   * Register a gauge. With `collect`, the value is read at render time (e.g. a cache size), so
   * the owner of the value does not need to know about metrics.
   */
  gauge(name: string, help: string, collect?: () => number): Gauge {
    return this.#add(gaugeFamily(name, help, collect));
  }

  /** Register a histogram with upper bounds `buckets` (ascending; `+Inf` is implied). */
  histogram(name: string, help: string, buckets: readonly number[] = LATENCY_BUCKETS): Histogram {
    return this.#add(histogramFamily(name, help, buckets));
  }

  /** Render every family in Prometheus text format 0.0.4. */
  render(): string {
    const out: string[] = [];
    for (const f of this.#families.values()) {
      const samples = f.render();
      if (samples.length === 0 && f.omitWhenEmpty) continue;
      out.push(`# HELP ${f.name} ${f.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`);
      out.push(`# TYPE ${f.name} ${f.type}`);
      out.push(...samples);
    }
    return out.join("\n") + "\n";
  }
}

/** A counter's samples by label set, and how they render. */
function counterFamily(name: string, help: string): { family: Family; metric: Counter } {
  const values = new Map<string, number>();
  const labelsOf = new Map<string, Labels | undefined>();
  const family: Family = {
    name,
    help,
    type: "counter",
    render: () => [...values].map(([k, v]) => `${name}${braces(k)} ${fmt(v)}`),
  };
  const metric: Counter = {
    inc(labels, by = 1) {
      if (by < 0) throw new RangeError("Counter can only increase");
      const k = labelKey(labels);
      const before = values.get(k);
      if (before === undefined) labelsOf.set(k, labels && { ...labels });
      values.set(k, (before ?? 0) + by);
    },
    value: (labels) => values.get(labelKey(labels)) ?? 0,
    sum(match) {
      let total = 0;
      for (const [k, v] of values) {
        const l = labelsOf.get(k);
        if (!match || Object.entries(match).every(([n, want]) => (l?.[n] ?? "") === want)) {
          total += v;
        }
      }
      return total;
    },
  };
  return { family, metric };
}

/** A family computed at render time; left out when `collect` throws or yields nothing. */
function collectorFamily(
  name: string,
  help: string,
  type: "counter" | "gauge",
  collect: () => Iterable<Sample>,
): { family: Family; metric: void } {
  const family: Family = {
    name,
    help,
    type,
    omitWhenEmpty: true,
    render: () => {
      const lines: string[] = [];
      try {
        for (const [labels, v] of collect()) {
          lines.push(`${name}${braces(labelKey(labels))} ${fmt(v)}`);
        }
      } catch {
        return [];
      }
      return lines;
    },
  };
  return { family, metric: undefined };
}

/** A gauge's values by label set (or its `collect`ed value), and how they render. */
function gaugeFamily(
  name: string,
  help: string,
  collect: (() => number) | undefined,
): { family: Family; metric: Gauge } {
  const values = new Map<string, number>();
  const family: Family = {
    name,
    help,
    type: "gauge",
    render: () => {
      if (collect) values.set("", collect());
      return [...values].map(([k, v]) => `${name}${braces(k)} ${fmt(v)}`);
    },
  };
  const metric: Gauge = {
    set(value, labels) {
      values.set(labelKey(labels), value);
    },
    value: (labels) => (collect && !labels ? collect() : values.get(labelKey(labels)) ?? 0),
  };
  return { family, metric };
}

/** A histogram's bucket counts, sum and count by label set, and how they render. */
function histogramFamily(
  name: string,
  help: string,
  buckets: readonly number[],
): { family: Family; metric: Histogram } {
  const bounds = [...buckets].sort((a, b) => a - b);
  const series = new Map<string, { counts: number[]; sum: number; count: number }>();
  const family: Family = {
    name,
    help,
    type: "histogram",
    render: () => {
      const lines: string[] = [];
      for (const [k, s] of series) {
        let cumulative = 0;
        bounds.forEach((b, i) => {
          cumulative += s.counts[i] ?? 0;
          lines.push(`${name}_bucket{${k ? k + "," : ""}le="${fmt(b)}"} ${cumulative}`);
        });
        lines.push(`${name}_bucket{${k ? k + "," : ""}le="+Inf"} ${s.count}`);
        lines.push(`${name}_sum${braces(k)} ${fmt(s.sum)}`);
        lines.push(`${name}_count${braces(k)} ${s.count}`);
      }
      return lines;
    },
  };
  const metric: Histogram = {
    observe(value, labels) {
      const k = labelKey(labels);
      let s = series.get(k);
      if (!s) {
        s = { counts: new Array(bounds.length).fill(0), sum: 0, count: 0 };
        series.set(k, s);
      }
      const i = bounds.findIndex((b) => value <= b);
      if (i >= 0) s.counts[i] = (s.counts[i] ?? 0) + 1;
      s.sum += value;
      s.count += 1;
    },
    count: (labels) => series.get(labelKey(labels))?.count ?? 0,
  };
  return { family, metric };
}
