// One provider's column: freshness, headline figures, daily charts, model mix, spend and seats.
import type { Freshness, Point, ProviderSummary, Reason, ReasonCode, SyncState } from "./api";
import { drawChart, type Series } from "./charts";
import { el } from "./dom";
import { count, dollars, percent, PROVIDER_NAMES } from "./format";

const COLORS = { cursor: "#0b5cad", github_copilot: "#6e40c9" } as const;

const STATE_HINTS: Record<SyncState, string> = {
  pending: "Waiting for the first sync: figures appear once the 30-day backfill has run.",
  syncing: "Syncing now: the latest days may still change.",
  idle: "Up to date.",
  error: "The last sync failed.",
};

/** What to do about each reason a sync fails with. */
const REASON_ADVICE: Record<ReasonCode, string> = {
  insufficient_plan: "Upgrade the Cursor plan to Business or Enterprise, then update the key through the connector.",
  metrics_disabled: 'An organisation owner enables the "Copilot usage metrics" policy in GitHub; the next sync picks it up.',
  invalid_api_key: "Create a new API key (Cursor) or token (GitHub) and update it through the connector.",
  insufficient_permissions:
    "Give the key or token the permissions the provider requires (see the connector's guide), then update it through the connector.",
  rate_limited: "Nothing to do: the sync is retried automatically.",
  provider_unavailable: "Nothing to do: the sync is retried automatically.",
  provider_error: "Nothing to do: the sync is retried automatically; if it keeps failing, check the provider's status.",
  internal_error: "Nothing to do: the sync is retried automatically; if it keeps failing, tell the operators.",
};

function reasonBlock(reason: Reason): HTMLElement {
  return el(
    "div",
    { class: "reason", "data-reason": reason.code },
    el("p", {}, el("code", {}, reason.code), reason.message ? ` · ${reason.message}` : ""),
    el("p", { class: "advice", "data-advice": reason.code }, `What to do: ${REASON_ADVICE[reason.code]}`),
  );
}

/** The newest day with a visible value, no later than the last complete day. */
export function latestDau(summary: ProviderSummary): number | null {
  const through = summary.freshness.data_through;
  const visible = summary.dau.filter((p) => p.active_users !== null && (through === null || p.date <= through));
  return visible.at(-1)?.active_users ?? null;
}

function totalRequests(summary: ProviderSummary): number {
  return summary.requests.reduce((sum, p) => sum + (p.requests ?? 0), 0);
}

/** A labelled figure whose marked element's text is the value alone (the unit stays outside). */
function figure(marks: Record<string, string>, label: string, value: string, unit = ""): HTMLElement {
  return el("div", { class: "figure" }, el("dt", {}, label), el("dd", {}, unit, el("span", marks, value)));
}

function freshnessBlock(freshness: Freshness): HTMLElement {
  const synced = freshness.last_synced_at ? freshness.last_synced_at.slice(0, 16).replace("T", " ") + " UTC" : "never";
  return el(
    "div",
    { class: `freshness state-${freshness.state}`, "data-sync-state": freshness.state },
    el("p", {}, el("strong", {}, `Sync: ${freshness.state}`), ` · data through ${freshness.data_through ?? "—"} · last synced ${synced} · ${freshness.days_with_data} of ${freshness.days_in_range} days with data`),
    el("p", { class: "hint" }, STATE_HINTS[freshness.state]),
    freshness.reason ? reasonBlock(freshness.reason) : null,
  );
}

function suppressedNote(points: Point[]): HTMLElement | null {
  const hidden = points.filter((p) => p.suppressed).length;
  if (hidden === 0) return null;
  return el(
    "p",
    { class: "muted", "data-suppressed-days": String(hidden) },
    `${hidden} day${hidden === 1 ? "" : "s"} hidden to protect privacy (too few active members): drawn as gaps.`,
  );
}

export function providerSection(summary: ProviderSummary): { section: HTMLElement; charts: [HTMLElement, Series][] } {
  const p = summary.provider;
  const name = PROVIDER_NAMES[p];
  const color = COLORS[p];
  const days = summary.dau.map((d) => d.date);
  const latest = latestDau(summary);
  const charts: [HTMLElement, Series][] = [];
  const chart = (series: Omit<Series, "color" | "days">): HTMLElement => {
    const box = el("div", {
      class: "chart",
      role: "img",
      "aria-label": `${series.title}, ${name}, ${days[0] ?? ""} to ${days.at(-1) ?? ""}`,
      "data-chart": series.label,
      "data-series": JSON.stringify(series.values),
    });
    charts.push([box, { ...series, color, days }]);
    return box;
  };

  const figures = el(
    "dl",
    { class: "figures" },
    figure({ "data-provider": p, "data-metric": "requests-total" }, "Requests (period)", String(totalRequests(summary))),
    figure({ "data-provider": p, "data-metric": "dau-latest" }, "Active users (latest day)", latest === null ? "n/a" : String(latest)),
    summary.spend ? figure({ "data-provider": p, "data-metric": "spend-total" }, "Spend (period)", dollars(summary.spend.total_cents), "$") : null,
  );

  const models = el(
    "ol",
    { class: "models" },
    ...summary.models.map((m) =>
      el(
        "li",
        { "data-model": m.model },
        el("span", { class: "model-name" }, m.model),
        el("span", { class: "bar", "aria-hidden": "true" }, el("span", { style: `width:${(m.share * 100).toFixed(1)}%;background:${color}` })),
        el("span", { class: "num" }, `${count(m.requests)} · ${percent(m.share)}`),
      ),
    ),
  );

  const spend = summary.spend;
  const seats = spend?.seats;
  const section = el(
    "section",
    { class: "card provider", "data-provider-section": p, "data-integration": summary.integration_id, "aria-labelledby": `title-${summary.integration_id}` },
    el("h2", { id: `title-${summary.integration_id}` }, name),
    freshnessBlock(summary.freshness),
    figures,
    chart({ title: "Daily active users", label: "active users", whole: true, bars: false, values: summary.dau.map((d) => d.active_users), format: (v) => count(v) }),
    suppressedNote(summary.dau),
    chart({ title: "Requests per day", label: "requests", whole: true, bars: true, values: summary.requests.map((d) => d.requests), format: (v) => count(v) }),
    el("h3", {}, "Model mix"),
    summary.models.length === 0 ? el("p", { class: "muted" }, "No requests in the period.") : models,
    spend ? chart({ title: "Spend per day ($)", label: "spend", whole: false, bars: true, values: spend.daily.map((d) => (d.cents === null ? null : d.cents / 100)), format: (v) => (Math.abs(v) < 10 ? `$${v.toFixed(2)}` : `$${count(Math.round(v))}`) }) : null,
    spend?.cycle
      ? el("p", { "data-spend-cycle": "" }, `Billing cycle since ${spend.cycle.start}: `, spend.cycle.total_cents === null ? "hidden to protect privacy" : `$${dollars(spend.cycle.total_cents)}`)
      : null,
    seats
      ? el(
          "dl",
          { class: "figures seats", "data-seats": "" },
          figure({ "data-seats-field": "total" }, "Seats", String(seats.total)),
          figure({ "data-seats-field": "active_30d" }, "Active (30 days)", String(seats.active_30d)),
          figure({ "data-seats-field": "never_used" }, "Never used", String(seats.never_used)),
          figure({ "data-seats-field": "monthly_cents" }, "Seats per month", dollars(seats.monthly_cents), "$"),
        )
      : null,
  );
  return { section, charts };
}

export { drawChart };
