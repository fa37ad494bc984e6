// Prices are integer cents everywhere; only the edges format or parse them.

export function formatPrice(cents, currency) {
  const amount = (cents / 100).toFixed(2);
  return currency === "EUR" ? `${amount} €` : `${currency} ${amount}`;
}

export function parsePrice(text: string): number {
  const match = /([0-9]+)\.([0-9]{2})/.exec(text);
  return Number(match[1]) * 100 + Number(match[2]);
}
