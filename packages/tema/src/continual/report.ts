import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { MethodResult, Summary } from './metrics.js';
import { formatBytes, signed } from './metrics.js';

const require = createRequire(import.meta.url);

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

/**
 * A self-contained report page: the ECharts library is inlined so that the file opens offline.
 * Charts: the loss curve of every method across the stages, the perplexity matrix of each
 * method as a heatmap, and the base-domain forgetting per method.
 */
export function renderReport(title: string, results: MethodResult[], summaries: Summary[], settings: Record<string, unknown>): string {
  const echarts = readFileSync(require.resolve('echarts/dist/echarts.min.js'), 'utf8');
  const data = { results, summaries, stepsPerStage: settings.stepsPerStage };
  const rows = summaries
    .map(
      (s) =>
        `<tr><td>${escapeHtml(s.method)}</td><td>${s.baseBefore.toFixed(2)}</td><td>${s.baseAfter.toFixed(2)}</td>` +
        `<td>${signed(s.forgetting)}</td><td>${s.averageFinal.toFixed(2)}</td><td>${s.averageJustLearned.toFixed(2)}</td><td>${s.backwardTransfer.toFixed(2)}</td>` +
        `<td>${s.stepSeconds.toFixed(3)}</td><td>${formatBytes(s.peakBytes)}</td></tr>`,
    )
    .join('\n');
  const heatmaps = results.map((_, i) => `<div id="heat${i}" class="chart small"></div>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.chart { width: 100%; height: 380px; } .small { height: 300px; } .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1em; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
</style></head><body>
<h1>${escapeHtml(title)}</h1>
<p>Perplexity is exp(mean next-token NLL) on each domain's held-out chunks. Forgetting is the base-domain perplexity after the last stage minus before training; BWT is the mean increase of each learned domain's perplexity between the end of its own stage and the end of the run.</p>
<table><tr><th>method</th><th>base before</th><th>base after</th><th>forgetting</th><th>avg final</th><th>avg just learned</th><th>BWT</th><th>step s</th><th>peak GPU</th></tr>
${rows}
</table>
<div id="loss" class="chart"></div>
<div id="forgetting" class="chart small"></div>
<h2>Perplexity after each stage</h2>
<div class="grid">${heatmaps}</div>
<h2>Settings</h2><pre>${escapeHtml(JSON.stringify(settings, null, 2))}</pre>
<script>${echarts}</script>
<script>
const data = ${JSON.stringify(data)};
const loss = echarts.init(document.getElementById('loss'));
loss.setOption({
  title: { text: 'Training loss (CE) per step, stages in order' },
  tooltip: { trigger: 'axis' }, legend: { top: 28 },
  xAxis: { type: 'value', name: 'step' }, yAxis: { type: 'value', name: 'CE', scale: true },
  series: data.results.map((r) => ({ name: r.method, type: 'line', showSymbol: false, data: r.losses.map((l) => [l.step, l.ce]),
    markLine: { symbol: 'none', silent: true, lineStyle: { type: 'dashed', color: '#999' },
      data: r.domains.slice(2).map((name, i) => ({ xAxis: (i + 1) * data.stepsPerStage, label: { formatter: name } })) } })),
});
const forgetting = echarts.init(document.getElementById('forgetting'));
forgetting.setOption({
  title: { text: 'Base-domain perplexity added after all stages' }, tooltip: {},
  xAxis: { type: 'category', data: data.summaries.map((s) => s.method) }, yAxis: { type: 'value', name: 'perplexity' },
  series: [{ type: 'bar', data: data.summaries.map((s) => Number(s.forgetting.toFixed(3))), label: { show: true, position: 'top' } }],
});
data.results.forEach((r, i) => {
  const chart = echarts.init(document.getElementById('heat' + i));
  const stages = r.perplexity.map((_, s) => (s === 0 ? 'before' : s + ': ' + r.domains[s]));
  const cells = [];
  r.perplexity.forEach((row, s) => row.forEach((v, d) => cells.push([d, s, Number(v.toFixed(2))])));
  const values = cells.map((c) => Math.log(c[2]));
  chart.setOption({
    title: { text: r.method }, tooltip: { formatter: (p) => stages[p.value[1]] + ', ' + r.domains[p.value[0]] + ': ' + p.value[2] },
    grid: { left: 120, bottom: 60 },
    xAxis: { type: 'category', data: r.domains, axisLabel: { rotate: 20 } }, yAxis: { type: 'category', data: stages, inverse: true },
    visualMap: { min: Math.min(...values), max: Math.max(...values), calculable: false, orient: 'horizontal', left: 'center', bottom: 0, show: false,
      inRange: { color: ['#f7fbff', '#6baed6', '#08306b'] }, dimension: 3 },
    series: [{ type: 'heatmap', data: cells.map((c) => [...c, Math.log(c[2])]), label: { show: true, formatter: (p) => p.value[2] } }],
  });
});
</script></body></html>
`;
}
