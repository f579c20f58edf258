// The AI Analytics API's shapes (metrics service, docs/metrics.md) and one way to call it.

export type Provider = "cursor" | "github_copilot";
export type SyncState = "pending" | "syncing" | "idle" | "error";

export interface Point {
  date: string;
  suppressed?: boolean;
}
export interface DauPoint extends Point {
  active_users: number | null;
}
export interface RequestsPoint extends Point {
  requests: number | null;
}
export interface SpendPoint extends Point {
  cents: number | null;
}
export interface Seats {
  total: number;
  never_used: number;
  active_30d: number;
  monthly_cents: number;
}
export interface Spend {
  currency: "USD";
  total_cents: number;
  daily: SpendPoint[];
  cycle: { start: string; total_cents: number | null; suppressed?: boolean } | null;
  seats?: Seats;
}
export type ReasonCode =
  | "invalid_api_key"
  | "insufficient_plan"
  | "insufficient_permissions"
  | "metrics_disabled"
  | "rate_limited"
  | "provider_unavailable"
  | "provider_error"
  | "internal_error";
export interface Reason {
  code: ReasonCode;
  message: string | null;
}
export interface Freshness {
  data_through: string | null;
  last_synced_at: string | null;
  days_with_data: number;
  days_in_range: number;
  state: SyncState;
  reason: Reason | null;
}
export interface ProviderSummary {
  provider: Provider;
  integration_id: string;
  freshness: Freshness;
  dau: DauPoint[];
  requests: RequestsPoint[];
  models: { model: string; requests: number; share: number }[];
  spend?: Spend;
}
export interface Summary {
  org_id: string;
  viewer_role: "admin" | "member";
  range: { start: string; end: string };
  providers: ProviderSummary[];
}
export interface Member {
  provider: Provider;
  email: string | null;
  login?: string | null;
  name: string | null;
  active_days: number;
  requests: number;
  top_model: string | null;
  spend_cents: number;
}

/** A failed call, as the API's error body (or the page) describes it. */
export class ApiError extends Error {
  constructor(
    readonly status: number | null,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class Api {
  constructor(
    private readonly org: string,
    private readonly token: string,
    private readonly days: number,
  ) {}

  summary(): Promise<Summary> {
    return this.get<Summary>("summary");
  }

  async members(): Promise<Member[]> {
    return (await this.get<{ members: Member[] }>("members")).members;
  }

  private async get<T>(resource: string): Promise<T> {
    const url = `/v1/orgs/${encodeURIComponent(this.org)}/ai-analytics/${resource}?days=${this.days}`;
    let response: Response;
    try {
      response = await fetch(url, {
        headers: { Authorization: `Bearer ${this.token}`, Accept: "application/json" },
        cache: "no-store",
      });
    } catch {
      throw new ApiError(null, "unreachable", "The metrics service did not answer; check that it is running and reload.");
    }
    if (!response.ok) {
      throw await errorOf(response);
    }
    return (await response.json()) as T;
  }
}

async function errorOf(response: Response): Promise<ApiError> {
  try {
    const body = (await response.json()) as { error?: { code?: unknown; message?: unknown } };
    const { code, message } = body.error ?? {};
    if (typeof code === "string" && typeof message === "string") {
      return new ApiError(response.status, code, message);
    }
  } catch {
    // Not the API's JSON error body: described below.
  }
  return new ApiError(response.status, "unexpected_response", `The API answered ${response.status} ${response.statusText}.`);
}
