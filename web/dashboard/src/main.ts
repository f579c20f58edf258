// The dashboard page: ?org= names the org, #token= carries the bearer token (a fragment never
// reaches the server), then the page calls the public AI Analytics API like any client.
import "./styles.css";

import { Api, ApiError, type Member } from "./api";
import { clearCharts, drawChart } from "./charts";
import { el } from "./dom";
import { PROVIDER_NAMES } from "./format";
import { membersSection } from "./members";
import { providerSection } from "./provider";

const app = document.getElementById("app") as HTMLElement;
const context = document.getElementById("context") as HTMLElement;

function showError(error: ApiError): void {
  app.replaceChildren(
    el(
      "div",
      { class: "card error", role: "alert", "data-state": "error", "data-error-code": error.code, "data-error-status": String(error.status ?? "") },
      el("h2", {}, error.status === null ? "Cannot show the dashboard" : `The API refused (${error.status})`),
      el("p", {}, error.message),
      el("p", { class: "muted" }, `Error code: ${error.code}`),
    ),
  );
}

function readParams(): { org: string; token: string; days: number } {
  const query = new URLSearchParams(window.location.search);
  const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  const org = query.get("org") ?? "";
  const token = fragment.get("token") ?? "";
  const days = Number(query.get("days") ?? "30");
  if (!org) throw new ApiError(null, "missing_org", "Add the organisation to the address: /dashboard/?org=<org id>#token=<bearer token>.");
  if (!token) throw new ApiError(null, "missing_token", "Add your bearer token after # in the address: #token=<bearer token> (it stays in the browser).");
  if (!Number.isInteger(days) || days < 1) throw new ApiError(null, "invalid_days", "days must be a whole number of days, for example ?days=30.");
  return { org, token, days };
}

async function main(): Promise<void> {
  const { org, token, days } = readParams();
  const api = new Api(org, token, days);
  const summary = await api.summary();
  const members: Member[] | null = summary.viewer_role === "admin" ? await api.members() : null;
  context.textContent = `${summary.org_id} · ${summary.range.start} to ${summary.range.end} · viewing as ${summary.viewer_role}`;

  clearCharts();
  if (summary.providers.length === 0) {
    app.replaceChildren(
      el(
        "div",
        { class: "card empty", "data-state": "empty" },
        el("h2", {}, "No AI assistant connected yet"),
        el("p", {}, `Connect ${PROVIDER_NAMES.cursor} or ${PROVIDER_NAMES.github_copilot} for this organisation (an admin does it through the connector); the figures appear after the first sync.`),
      ),
    );
    return;
  }
  const parts = summary.providers.map(providerSection);
  const grid = el("div", { class: "providers", "data-state": "ready" }, ...parts.map((p) => p.section));
  app.replaceChildren(grid, ...(members ? [membersSection(members)] : []));
  for (const part of parts) for (const [box, series] of part.charts) drawChart(box, series);
}

main().catch((error: unknown) => {
  showError(error instanceof ApiError ? error : new ApiError(null, "page_error", `The page failed: ${String(error)}`));
});
