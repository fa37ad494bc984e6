// What the code must keep doing while its types are fixed. Plain JavaScript on purpose: it runs
// on what tsc emits (.build/, see the "tests" guard in ratchet.toml) and is not type-checked,
// so its own lines never count as errors of the scope.
import assert from "node:assert/strict";
import { test } from "node:test";

import { addItem, findItem, inStock, restock } from "../.build/inventory.js";
import { formatPrice, parsePrice } from "../.build/money.js";
import { discountPercent, largestOrder, lineTotal, page, receipt, total } from "../.build/orders.js";
import { settings } from "../.build/settings.js";
import { byId, displayName, initials, sortByName } from "../.build/users.js";

addItem({ sku: "MUG", name: "Mug", priceCents: 1250, stock: 3 });
addItem({ sku: "TEE", name: "T-shirt", priceCents: 1999, stock: 0 });

const order = { id: 1, lines: [{ sku: "MUG", quantity: 2 }, { sku: "TEE", quantity: 1 }], coupon: "WELCOME10" };

test("prices", () => {
  assert.equal(formatPrice(4499, "EUR"), "44.99 €");
  assert.equal(formatPrice(5, "USD"), "USD 0.05");
  assert.equal(parsePrice("total 12.50 EUR"), 1250);
});

test("inventory", () => {
  assert.equal(findItem("MUG").name, "Mug");
  assert.equal(findItem("NOPE"), undefined);
  assert.equal(inStock("MUG"), true);
  assert.equal(inStock("TEE"), false);
  assert.equal(inStock("NOPE"), false);
  assert.equal(restock("TEE", 4), 4);
  assert.equal(restock("TEE", -4), 0);
});

test("orders", () => {
  assert.equal(lineTotal({ sku: "MUG", quantity: 2 }), 2500);
  assert.equal(discountPercent(order), 10);
  assert.equal(discountPercent({ id: 2, lines: [] }), 0);
  assert.equal(discountPercent({ id: 3, lines: [], coupon: "BOGUS" }), 0);
  assert.equal(total(order), 4049);
  assert.equal(receipt(order), `2 x Mug\n1 x T-shirt\ntotal: 40.49 €`);
  const small = { id: 4, lines: [{ sku: "MUG", quantity: 1 }] };
  assert.equal(largestOrder([small, order]), order);
  assert.equal(largestOrder([]), undefined);
  const many = Array.from({ length: 3 * settings.pageSize }, (_, id) => ({ id, lines: [] }));
  const second = Array.from({ length: settings.pageSize }, (_, i) => settings.pageSize + i);
  assert.deepEqual(page(many, 1).map((o) => o.id), second);
});

test("users", () => {
  const ada = { id: 7, name: "Ada Lovelace", email: "ada@example.org" };
  const anon = { id: 8, name: "  ", email: "anon@example.org" };
  assert.equal(displayName(ada), "Ada Lovelace");
  assert.equal(displayName(anon), "anon");
  assert.equal(byId([ada, anon], "8"), anon);
  assert.equal(byId([ada], "9"), undefined);
  assert.equal(initials(ada), "AL");
  assert.deepEqual(sortByName([anon, ada]).map((u) => u.id), [8, 7]);
});
