/** A strict parser of the Prometheus text exposition format, for the metrics tests (a promtool-like check written here). */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parse the text exposition format strictly (throws on anything malformed). */
export function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: Sample[] = [];
  const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  for (const [i, line] of text.split('\n').entries()) {
    if (line === '') continue;
    let m: RegExpExecArray | null;
    if ((m = /^# HELP ([^ ]+) (.*)$/.exec(line))) {
      if (!metricName.test(m[1]!)) throw new Error(`line ${i + 1}: bad name in HELP`);
      helps.add(m[1]!);
      continue;
    }
    if ((m = /^# TYPE ([^ ]+) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      if (types.has(m[1]!)) throw new Error(`line ${i + 1}: second TYPE for ${m[1]}`);
      types.set(m[1]!, m[2]!);
      continue;
    }
    if (line.startsWith('#')) throw new Error(`line ${i + 1}: unknown comment ${line}`);
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)( -?\d+)?$/.exec(line);
    if (!m) throw new Error(`line ${i + 1}: not a sample: ${line}`);
    const labels: Record<string, string> = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/gy;
      let pos = 0;
      let lm: RegExpExecArray | null;
      while (pos < m[3].length && (lm = re.exec(m[3])) !== null) {
        labels[lm[1]!] = lm[2]!;
        pos = re.lastIndex;
      }
      if (pos !== m[3].length) throw new Error(`line ${i + 1}: bad labels ${m[3]}`);
    }
    const base = m[1]!.replace(/_(bucket|sum|count)$/, '');
    const family = types.has(m[1]!) ? m[1]! : base;
    if (!types.has(family)) throw new Error(`line ${i + 1}: sample ${m[1]} before its TYPE`);
    if (!helps.has(family)) throw new Error(`line ${i + 1}: sample ${m[1]} without HELP`);
    samples.push({ name: m[1]!, labels, value: Number(m[4]) });
  }
  // histograms: cumulative buckets ending at +Inf = _count
  for (const [name, type] of types) {
    if (type !== 'histogram') continue;
    const series = new Map<string, Sample[]>();
    for (const s of samples.filter((x) => x.name === `${name}_bucket`)) {
      const { le, ...rest } = s.labels;
      const key = JSON.stringify(rest);
      series.set(key, [...(series.get(key) ?? []), { ...s, labels: { ...s.labels, le: le! } }]);
    }
    for (const [key, buckets] of series) {
      for (let j = 1; j < buckets.length; j++) if (buckets[j]!.value < buckets[j - 1]!.value) throw new Error(`${name} ${key}: buckets not cumulative`);
      const inf = buckets.find((b) => b.labels.le === '+Inf');
      const count = samples.find((x) => x.name === `${name}_count` && JSON.stringify(x.labels) === key);
      if (!inf || !count || inf.value !== count.value) throw new Error(`${name} ${key}: +Inf bucket differs from _count`);
    }
  }
  return { samples, types };
}
