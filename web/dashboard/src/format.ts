// Numbers as the page shows them. Headline figures keep a plain machine-readable form.

/** Whole cents (half away from zero) as dollars with two decimals, no grouping: "1234.57". */
export function dollars(cents: number): string {
  const whole = Math.round(cents);
  const sign = whole < 0 ? "-" : "";
  const abs = Math.abs(whole);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, "0")}`;
}

const grouped = new Intl.NumberFormat("en-US");

export function count(n: number): string {
  return grouped.format(n);
}

export function percent(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}

export const PROVIDER_NAMES = { cursor: "Cursor", github_copilot: "GitHub Copilot" } as const;

/** Seconds since the epoch of a UTC day "YYYY-MM-DD" (the charts' x axis). */
export function daySeconds(day: string): number {
  return Date.parse(`${day}T00:00:00Z`) / 1000;
}
