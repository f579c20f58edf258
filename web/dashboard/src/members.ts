// The admins' members table: every provider's members, sortable by any column.
import type { Member } from "./api";
import { el } from "./dom";
import { count, dollars, PROVIDER_NAMES } from "./format";

interface Column {
  key: string;
  title: string;
  numeric: boolean;
  value: (m: Member) => string | number;
  show: (m: Member) => string;
}

const who = (m: Member): string => m.email ?? m.login ?? m.name ?? "";

const COLUMNS: Column[] = [
  { key: "member", title: "Member", numeric: false, value: who, show: who },
  { key: "provider", title: "Tool", numeric: false, value: (m) => PROVIDER_NAMES[m.provider], show: (m) => PROVIDER_NAMES[m.provider] },
  { key: "active_days", title: "Active days", numeric: true, value: (m) => m.active_days, show: (m) => count(m.active_days) },
  { key: "requests", title: "Requests", numeric: true, value: (m) => m.requests, show: (m) => count(m.requests) },
  { key: "top_model", title: "Top model", numeric: false, value: (m) => m.top_model ?? "", show: (m) => m.top_model ?? "—" },
  { key: "spend_cents", title: "Spend ($)", numeric: true, value: (m) => m.spend_cents, show: (m) => dollars(m.spend_cents) },
];

export function membersSection(members: Member[]): HTMLElement {
  let sortKey = "requests";
  let descending = true;
  const head = el("tr");
  const body = el("tbody");
  const table = el("table", { class: "members", "data-members": "" }, el("thead", {}, head), body);

  function render(): void {
    const column = COLUMNS.find((c) => c.key === sortKey) ?? COLUMNS[0]!;
    const rows = [...members].sort((a, b) => {
      const x = column.value(a);
      const y = column.value(b);
      const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return (descending ? -order : order) || who(a).localeCompare(who(b));
    });
    head.replaceChildren(
      ...COLUMNS.map((c) => {
        const sorted = c.key === sortKey;
        const button = el("button", { type: "button", "data-sort": c.key }, c.title, sorted ? (descending ? " ▼" : " ▲") : "");
        button.addEventListener("click", () => {
          descending = sorted ? !descending : c.numeric;
          sortKey = c.key;
          render();
        });
        return el("th", { scope: "col", "aria-sort": sorted ? (descending ? "descending" : "ascending") : "none", class: c.numeric ? "num" : "" }, button);
      }),
    );
    body.replaceChildren(
      ...rows.map((m) =>
        el("tr", { "data-member": who(m), "data-provider": m.provider }, ...COLUMNS.map((c) => el("td", { class: c.numeric ? "num" : "" }, c.show(m)))),
      ),
    );
  }

  render();
  return el(
    "section",
    { class: "card wide", "aria-labelledby": "members-title" },
    el("h2", { id: "members-title" }, "Members"),
    members.length === 0 ? el("p", { class: "muted" }, "No member activity in the period.") : el("div", { class: "scroll" }, table),
  );
}
