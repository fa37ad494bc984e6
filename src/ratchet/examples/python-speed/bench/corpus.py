"""The benchmark's inputs: storefront-like templates and their contexts, the same on every run.

Made from a fixed seed (no files to download). The speed and allocation benchmarks render
these; the holdout (holdout.py) renders inputs of its own that no proposer is shown.
"""

from __future__ import annotations

import random
from typing import Any

PRODUCT_LIST = """\
<section class="catalog">
  <h1>{{ shop.name|title }}</h1>
  {% if banner %}<p class="banner">{{ banner|escape }}</p>{% endif %}
  <ul>
  {% for product in products %}
    <li class="product">
      <a href="/products/{{ product.handle }}">{{ product.title|escape }}</a>
      <span class="price">{{ product.price }} {{ shop.currency|upper }}</span>
      {% if product.on_sale %}<em>on sale</em>{% else %}<span>regular price</span>{% endif %}
      <ul class="tags">{% for tag in product.tags %}<li>{{ tag|lower }}</li>{% endfor %}</ul>
    </li>
  {% endfor %}
  </ul>
  <footer>{{ products|length }} products, served by {{ shop.name }}</footer>
</section>
"""

CART = """\
<table class="cart">
{% for line in cart.lines %}
  <tr><td>{{ line.title|escape }}</td><td>{{ line.quantity }}</td><td>{{ line.price }}</td></tr>
{% endfor %}
</table>
<p>Total: {{ cart.total }} {{ shop.currency|upper }}.{% if cart.note %} Note: {{ cart.note|strip|escape }}{% endif %}</p>
"""

ARTICLE = """\
<article>
  <h2>{{ article.title|title }}</h2>
  <p class="byline">by {{ article.author.name }} ({{ article.author.email|lower }})</p>
  {% for paragraph in article.paragraphs %}<p>{{ paragraph|escape }}</p>
  {% endfor %}
  {% if article.comments %}<h3>{{ article.comments|length }} comments</h3>
  {% for comment in article.comments %}<blockquote>{{ comment.body|escape }} -- {{ comment.author }}</blockquote>
  {% endfor %}{% else %}<p>No comments yet.</p>{% endif %}
</article>
"""

WORDS = "amber birch cedar dune ember fjord grove harbor iris juniper kelp lumen moss nectar onyx pine".split()


def _phrase(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def corpus(seed: int = 7) -> list[tuple[str, dict[str, Any]]]:
    """(template source, context) pairs: what `speed.py` and `allocs.py` render."""
    rng = random.Random(seed)
    shop = {"name": "the little shop of " + _phrase(rng, 2), "currency": "eur"}
    products = [
        {
            "handle": f"item-{i}",
            "title": _phrase(rng, 3) + (" & co" if i % 7 == 0 else ""),
            "price": f"{rng.uniform(2, 200):.2f}",
            "on_sale": rng.random() < 0.3,
            "tags": [rng.choice(WORDS).upper() for _ in range(rng.randint(0, 4))],
        }
        for i in range(40)
    ]
    cart = {
        "lines": [{"title": _phrase(rng, 2), "quantity": rng.randint(1, 5), "price": f"{rng.uniform(2, 90):.2f}"} for _ in range(12)],
        "total": "431.20",
        "note": "  please <gift-wrap> it  ",
    }
    article = {
        "title": _phrase(rng, 5),
        "author": {"name": "Ada", "email": "ADA@EXAMPLE.ORG"},
        "paragraphs": [_phrase(rng, 40) + " <b>" + _phrase(rng, 2) + "</b>" for _ in range(6)],
        "comments": [{"body": _phrase(rng, 12), "author": rng.choice(WORDS)} for _ in range(5)],
    }
    return [
        (PRODUCT_LIST, {"shop": shop, "products": products, "banner": "Sale: <20% off> everything"}),
        (CART, {"shop": shop, "cart": cart}),
        (ARTICLE, {"article": article}),
        (ARTICLE, {"article": {**article, "comments": []}}),
    ]
