// Order totals and receipts (migrated from orders.js).

import { findItem } from "./inventory.js";
import { formatPrice } from "./money.js";
import { settings } from "./settings.js";

export interface Line {
  sku: string;
  quantity: number;
}

export interface Order {
  id: number;
  lines: Line[];
  coupon?: string;
}

const COUPONS = { WELCOME10: 10, SPRING25: 25 };

export function lineTotal(line) {
  const item = findItem(line.sku);
  return item.priceCents * line.quantity;
}

export function discountPercent(order: Order): number {
  return COUPONS[order.coupon] ?? 0;
}

export function total(order: Order): number {
  const gross = order.lines.reduce((sum, line) => sum + lineTotal(line), 0);
  return Math.round((gross * (100 - discountPercent(order))) / 100);
}

export function receipt(order: Order): string {
  const rows = order.lines.map((line) => `${line.quantity} x ${findItem(line.sku).name}`);
  rows.push(`total: ${formatPrice(total(order), settings.currency)}`);
  return rows.join("\n");
}

export function largestOrder(orders: Order[]): Order {
  let best: Order | undefined;
  for (const order of orders) {
    if (best === undefined || total(order) > total(best)) best = order;
  }
  return best;
}

export function page(orders: Order[], number: number): Order[] {
  const start = number * settings.pageSize;
  return orders.slice(start, start + settings.pageSize);
}
