// Runtime settings, checked against their schema at compile time: `satisfies` makes tsc reject
// a value the service does not accept, so a bad setting is a type error, not an outage.
// (The two marked values are what the optuna proposer tunes when the example runs offline.)

export type Settings = {
  /** How often a declined payment is retried. */
  retries: 0 | 1 | 2 | 3;
  /** Orders per page in a listing. */
  pageSize: 10 | 20 | 50 | 100;
  currency: "EUR" | "USD" | "GBP";
};

export const settings = {
  retries: 5, // ratchet: int 0..6
  pageSize: 25, // ratchet: choice 10, 25, 50, 100, 250
  currency: "EUR",
} satisfies Settings;
