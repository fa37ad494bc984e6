// The stock, keyed by SKU (migrated from inventory.js: the types are new, the logic is not).

export interface Item {
  sku: string;
  name: string;
  priceCents: number;
  stock: number;
}

const items = {};

export function addItem(item: Item): void {
  items[item.sku] = item;
}

export function findItem(sku: string): Item {
  return items[sku];
}

export function inStock(sku: string): boolean {
  const item = findItem(sku);
  return item !== undefined && item.stock > 0;
}

export function restock(sku: string, count) {
  const item = findItem(sku);
  item.stock += count;
  return item.stock;
}
