// Daily series drawn with uPlot. A null value (a day suppressed for privacy) is a gap, never a zero.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

import { daySeconds } from "./format";

export interface Series {
  title: string;
  label: string;
  color: string;
  bars: boolean;
  days: string[];
  values: (number | null)[];
  format: (value: number) => string;
  /** Counts (users, requests): whole-number ticks only. */
  whole: boolean;
}

const WHOLE_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6];

const INK = "#1f2328";
const GRID = "#d0d7de";
const charts = new Set<{ plot: uPlot; box: HTMLElement }>();

function widthOf(box: HTMLElement): number {
  return Math.max(200, Math.floor(box.clientWidth));
}

export function drawChart(box: HTMLElement, series: Series): void {
  const axis: uPlot.Axis = { stroke: INK, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1 } };
  const options: uPlot.Options = {
    title: series.title,
    width: widthOf(box),
    height: 180,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: [
      { ...axis, values: (_u, ticks) => ticks.map((t) => new Date(t * 1000).toISOString().slice(5, 10)) },
      { ...axis, size: 56, incrs: series.whole ? WHOLE_STEPS : undefined, values: (_u, ticks) => ticks.map((t) => series.format(t)) },
    ],
    series: [
      {},
      {
        label: series.label,
        stroke: series.color,
        width: 2,
        fill: series.bars ? series.color : undefined,
        spanGaps: false,
        points: { show: !series.bars, size: 4 },
        paths: series.bars ? uPlot.paths.bars?.({ size: [0.7, 24] }) : undefined,
      },
    ],
  };
  const data: uPlot.AlignedData = [series.days.map(daySeconds), series.values];
  const plot = new uPlot(options, data, box);
  charts.add({ plot, box });
}

export function clearCharts(): void {
  for (const { plot } of charts) plot.destroy();
  charts.clear();
}

window.addEventListener("resize", () => {
  for (const { plot, box } of charts) plot.setSize({ width: widthOf(box), height: 180 });
});
