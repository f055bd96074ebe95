"""Deterministic demo data: sources, customers, custom attributes, tags and e-commerce events.

The same (seed, now) pair always produces the same rows (decisions 51): every random choice
comes from one `random.Random(seed)` consumed in a fixed order, and every value that would
otherwise default to the wall clock or `secrets` (created_at, write keys, message ids) is set
from it. Row ids are not part of that promise, since they depend on the database's sequences.

Customers follow personas so the pre-built segments have members: anonymous visitors,
browsers, email readers, cart abandoners (a recent `Product Added` with no later order),
one-off and repeat buyers, loyal customers and high spenders (total revenue at least 1,000).
Events are generated per customer most-important-first: the persona's signature sessions are
always kept whole, then ordinary browsing fills the customer's share of the event budget, so
even a small demo has the funnels that make it interesting.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random

from django.db import connection, models, transaction

from customers.models import Customer, CustomerIdentity, Event, Source, Tag
from customers.services.attributes import attribute_register

BATCH = 1000  # customers per bulk_create round; events are flushed with them (about 40k rows)

SOURCES = ["Web shop", "iOS app", "Android app", "Email platform", "Order backend"]

CUSTOM_ATTRIBUTES = [
    ("plan", "string", "Subscription plan: free, basic, pro or enterprise."),
    ("loyalty_points", "number", "Points in the loyalty programme."),
    ("newsletter", "boolean", "Opted in to the newsletter."),
    ("signup_date", "date", "Day the account was created in the shop."),
]
TAGS = ["vip", "newsletter", "b2b", "wholesale", "beta-tester", "churn-risk", "press"]

# country: (weight, cities, language, currency, email domains)
COUNTRIES = {
    "PL": (
        22,
        ["Warszawa", "Kraków", "Gdańsk", "Wrocław", "Poznań", "Łódź"],
        "pl",
        "PLN",
        ["gmail.com", "wp.pl", "onet.pl"],
    ),
    "GB": (
        18,
        ["London", "Manchester", "Bristol", "Leeds", "Edinburgh"],
        "en",
        "GBP",
        ["gmail.com", "outlook.com", "btinternet.co.uk"],
    ),
    "DE": (16, ["Berlin", "München", "Hamburg", "Köln", "Leipzig"], "de", "EUR", ["gmail.com", "web.de", "gmx.de"]),
    "FR": (
        12,
        ["Paris", "Lyon", "Marseille", "Toulouse", "Nantes"],
        "fr",
        "EUR",
        ["gmail.com", "orange.fr", "free.fr"],
    ),
    "US": (
        16,
        ["New York", "Chicago", "Austin", "Seattle", "Boston"],
        "en",
        "USD",
        ["gmail.com", "yahoo.com", "icloud.com"],
    ),
    "ES": (5, ["Madrid", "Barcelona", "Valencia", "Sevilla"], "es", "EUR", ["gmail.com", "hotmail.es"]),
    "IT": (5, ["Roma", "Milano", "Torino", "Bologna"], "it", "EUR", ["gmail.com", "libero.it"]),
    "NL": (3, ["Amsterdam", "Rotterdam", "Utrecht"], "nl", "EUR", ["gmail.com", "ziggo.nl"]),
    "SE": (3, ["Stockholm", "Göteborg", "Malmö"], "sv", "SEK", ["gmail.com", "telia.se"]),
}

FIRST_NAMES = {
    "female": {
        "PL": ["Anna", "Zofia", "Małgorzata", "Katarzyna", "Agnieszka", "Julia", "Łucja"],
        "DE": ["Anna", "Lena", "Sophie", "Jana", "Katrin", "Marie"],
        "FR": ["Camille", "Léa", "Chloé", "Manon", "Inès"],
        "*": ["Emma", "Olivia", "Sophia", "Isabella", "Mia", "Charlotte", "Amelia", "Grace", "Lucía", "Giulia"],
    },
    "male": {
        "PL": ["Jan", "Piotr", "Łukasz", "Krzysztof", "Tomasz", "Michał", "Paweł"],
        "DE": ["Lukas", "Jonas", "Felix", "Jürgen", "Maximilian"],
        "FR": ["Louis", "Hugo", "Théo", "Jules", "Raphaël"],
        "*": ["James", "Liam", "Noah", "Oliver", "William", "Ethan", "Lucas", "Mateo", "Leonardo", "Daan"],
    },
}
LAST_NAMES = {
    "PL": ["Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kamiński", "Lewandowski", "Zieliński"],
    "DE": ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Wagner"],
    "FR": ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Lefèvre"],
    "*": ["Smith", "Johnson", "Brown", "Taylor", "Wilson", "Garcia", "Rossi", "de Vries", "Andersson", "López"],
}
ASCII = str.maketrans("ąćęłńóśźżäöüßéèêëàâîïôûùçñíáú", "acelnoszzaouseeeeaaiiouucniau")

# (name, category, price in the customer's currency unit)
PRODUCTS = [
    ("Linen shirt", "Apparel", 39.0), ("Merino sweater", "Apparel", 89.0), ("Rain jacket", "Apparel", 149.0),
    ("Running shoes", "Shoes", 119.0), ("Leather boots", "Shoes", 189.0), ("Canvas sneakers", "Shoes", 59.0),
    ("Ceramic mug", "Home", 14.0), ("Wool blanket", "Home", 79.0), ("Table lamp", "Home", 64.0),
    ("Espresso machine", "Kitchen", 449.0), ("Chef's knife", "Kitchen", 99.0), ("Cast iron pan", "Kitchen", 54.0),
    ("Wireless earbuds", "Electronics", 129.0), ("Smart watch", "Electronics", 299.0),
    ("4K monitor", "Electronics", 379.0), ("Laptop stand", "Electronics", 45.0),
    ("Yoga mat", "Sport", 29.0), ("Road bike helmet", "Sport", 85.0), ("Tent for two", "Sport", 229.0),
    ("Notebook set", "Stationery", 12.0), ("Fountain pen", "Stationery", 49.0),
]  # fmt: skip
EXPENSIVE = [p for p in PRODUCTS if p[2] >= 200]
PAGES = [("/", "Home"), ("/new", "New arrivals"), ("/sale", "Sale"), ("/blog", "Journal"), ("/help", "Help"),
         ("/stores", "Stores"), ("/account", "My account")]  # fmt: skip
SCREENS = ["Home", "Search", "Category", "Product", "Cart", "Wishlist", "Profile"]
CAMPAIGNS = [("google", "cpc"), ("facebook", "paid_social"), ("newsletter", "email"), ("instagram", "social")]
PROFILE_SOURCES = ["Organic", "MailChimp", "Facebook", "Google Ads", "Referral", "Instagram", "Partner import"]

# persona: (share of customers, share of the event budget per customer, identified?)
PERSONAS = {
    "visitor": (25, 0.5, False),
    "crm_only": (5, 0.0, True),
    "browser": (17, 1.0, True),
    "reader": (13, 1.0, True),
    "abandoner": (10, 1.4, True),
    "buyer": (15, 1.4, True),
    "repeat": (9, 2.2, True),
    "loyal": (4, 3.5, True),
    "high_spender": (2, 3.5, True),
}
ORDER_SESSIONS = {"buyer": (1, 1), "repeat": (2, 4), "loyal": (5, 8), "high_spender": (3, 6)}


@dataclasses.dataclass
class DemoSummary:
    sources: int = 0
    customers: int = 0
    identified: int = 0
    anonymous: int = 0
    events: int = 0
    orders: int = 0
    revenue: float = 0.0
    tags: int = 0
    personas: dict = dataclasses.field(default_factory=dict)


class _Generator:
    def __init__(self, *, seed: int, now: dt.datetime):
        self.rng = random.Random(seed)
        self.now = now
        self.sources: dict[str, Source] = {}

    # -- small helpers --------------------------------------------------------------------------
    def uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def weighted(self, options: dict):
        keys = list(options)
        return self.rng.choices(keys, weights=[options[k] for k in keys])[0]

    def moment(self, *, days_back: float) -> dt.datetime:
        """A session start in the last `days_back` days, biased towards recent days (activity grows).

        It is at least an hour before `now` so a whole session (under an hour) ends before it:
        events after `now` are ignored by the engine and would look like clock skew.
        """
        offset = 1 / 24 + (days_back - 1 / 24) * (self.rng.random() ** 1.3)
        return (self.now - dt.timedelta(days=offset)).replace(microsecond=0)

    # -- profiles -------------------------------------------------------------------------------
    def profile(self, index: int, persona: str) -> dict:
        rng = self.rng
        country = rng.choices(list(COUNTRIES), weights=[c[0] for c in COUNTRIES.values()])[0]
        _, cities, language, currency, domains = COUNTRIES[country]
        identified = PERSONAS[persona][2]
        p = {
            "persona": persona,
            "currency": currency,
            "mobile": rng.random() < 0.55,
            "app": rng.random() < 0.25,
            "anonymous_id": self.uuid() if (not identified or rng.random() < 0.6) else None,
            "fields": {"country": country if (identified or rng.random() < 0.7) else None},
            "custom": {},
            "tags": [],
        }
        f = p["fields"]
        f["city"] = rng.choice(cities) if f["country"] and rng.random() < 0.85 else None
        f["language"] = language if f["country"] else None
        if not identified:
            return p
        gender = rng.choices(["female", "male", "other", None], weights=[47, 45, 2, 6])[0]
        names_for = FIRST_NAMES[gender if gender in FIRST_NAMES else rng.choice(["female", "male"])]
        first = rng.choice(names_for.get(country) or names_for["*"])
        last = rng.choice(LAST_NAMES.get(country) or LAST_NAMES["*"])
        local = f"{first}.{last}".lower().translate(ASCII).replace(" ", "").replace("'", "")
        f.update(
            external_id=f"cus_{index + 1:06d}",
            email=f"{local}{index + 1}@{rng.choice(domains)}",
            first_name=first,
            last_name=last,
            gender=gender,
            birth_date=dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(57 * 365)) if rng.random() < 0.8 else None,
            phone=f"+{rng.randrange(10**10, 10**11)}" if rng.random() < 0.4 else None,
            source=rng.choices(PROFILE_SOURCES, weights=[30, 20, 15, 12, 8, 8, 7])[0],
        )
        plan = rng.choices(["free", "basic", "pro", "enterprise"], weights=[50, 25, 18, 7])[0]
        newsletter = rng.random() < (0.8 if persona == "reader" else 0.4)
        signup = (self.now - dt.timedelta(days=rng.randrange(95, 1500))).date()
        p["custom"] = {"plan": plan, "newsletter": newsletter, "signup_date": signup.isoformat()}
        if persona != "browser" or rng.random() < 0.5:
            p["custom"]["loyalty_points"] = rng.randrange(0, 400) * (5 if persona in ("loyal", "high_spender") else 1)
        tags = []
        if persona in ("high_spender", "loyal") and rng.random() < 0.7:
            tags.append("vip")
        if newsletter:
            tags.append("newsletter")
        if plan == "enterprise":
            tags.append("b2b")
            if rng.random() < 0.4:
                tags.append("wholesale")
        for tag, chance in (("beta-tester", 0.03), ("churn-risk", 0.04), ("press", 0.005)):
            if rng.random() < chance:
                tags.append(tag)
        p["tags"] = tags
        return p

    # -- events ---------------------------------------------------------------------------------
    def event(self, p, name, at, source, properties, *, mobile=None) -> dict:
        mobile = p["mobile"] if mobile is None else mobile
        context = {"device": {"type": "mobile" if mobile else "desktop"}}
        if source == "Email platform":
            context = {}
        elif self.rng.random() < 0.3:
            campaign, medium = self.rng.choice(CAMPAIGNS)
            context["campaign"] = {"source": campaign, "medium": medium, "name": f"{at:%B}-promo".lower()}
        return {
            "name": name,
            "timestamp": at,
            "received_at": at + dt.timedelta(milliseconds=self.rng.randrange(40, 3000)),
            "properties": properties,
            "context": context,
            "source": source,
            "message_id": self.uuid(),
        }

    def browse(self, p, at, *, products=0) -> list[dict]:
        rng, events = self.rng, []
        app = p["app"] and rng.random() < 0.6
        source = rng.choice(["iOS app", "Android app"]) if app else "Web shop"
        for _ in range(rng.randint(1, 4)):
            at += dt.timedelta(seconds=rng.randrange(5, 240))
            if app:
                events.append(self.event(p, "Screen Viewed", at, source, {"name": rng.choice(SCREENS)}, mobile=True))
            else:
                path, title = rng.choice(PAGES)
                props = {"path": path, "title": title, "url": f"https://shop.example.com{path}"}
                events.append(self.event(p, "Page Viewed", at, source, props))
        for _ in range(products):
            at += dt.timedelta(seconds=rng.randrange(10, 300))
            events.append(self.event(p, "Product Viewed", at, source, self.product(rng.choice(PRODUCTS), p)))
        return events

    def product(self, product, p, quantity=None) -> dict:
        name, category, price = product
        props = {"product_id": f"sku-{PRODUCTS.index(product) + 1:03d}", "name": name, "category": category}
        props.update(price=price, currency=p["currency"])
        if quantity is not None:
            props["quantity"] = quantity
        return props

    def cart(self, p, at, *, order: bool, expensive=False) -> list[dict]:
        rng = self.rng
        events = self.browse(p, at, products=rng.randint(1, 3))
        at = events[-1]["timestamp"]
        source = events[-1]["source"]
        basket = []
        for _ in range(rng.randint(1, 3)):
            product = rng.choice(EXPENSIVE if expensive else PRODUCTS)
            qty = rng.choices([1, 2, 3], weights=[80, 15, 5])[0]
            basket.append((product, qty))
            at += dt.timedelta(seconds=rng.randrange(10, 200))
            events.append(self.event(p, "Product Added", at, source, self.product(product, p, qty)))
        if order:
            at += dt.timedelta(seconds=rng.randrange(60, 900))
            products = [self.product(prod, p, qty) for prod, qty in basket]
            revenue = round(sum(prod[2] * qty for prod, qty in basket), 2)
            props = {"order_id": self.uuid()[:13], "revenue": revenue, "currency": p["currency"], "products": products}
            events.append(self.event(p, "Order Completed", at, rng.choice([source, "Order backend"]), props))
        return events

    def email(self, p, at) -> list[dict]:
        campaign = self.rng.choice(["Spring sale", "Weekly picks", "New arrivals", "Loyalty rewards"])
        props = {"campaign_id": f"cmp-{campaign.lower().replace(' ', '-')}", "subject": campaign}
        events = [self.event(p, "Email Opened", at, "Email platform", props)]
        if self.rng.random() < 0.35:
            clicked = at + dt.timedelta(seconds=self.rng.randrange(5, 600))
            events.append(self.event(p, "Email Clicked", clicked, "Email platform", {**props, "link": "cta"}))
        return events

    def events_for(self, p, budget: int) -> list[dict]:
        """Signature sessions first, then ordinary browsing up to `budget` events."""
        rng, persona = self.rng, p["persona"]
        signature: list[list[dict]] = []
        if persona == "abandoner":
            signature.append(self.cart(p, self.moment(days_back=6), order=False))
            if rng.random() < 0.3:  # some abandoners bought before
                signature.append(self.cart(p, self.moment(days_back=90), order=True))
        elif persona in ORDER_SESSIONS:
            low, high = ORDER_SESSIONS[persona]
            recent = 60 if persona == "loyal" else 90
            spent, orders = 0.0, rng.randint(low, high)
            # High spenders keep ordering until they pass 1,000 (the high-value-customers segment).
            while orders > 0 or (persona == "high_spender" and spent < 1000):
                session = self.cart(p, self.moment(days_back=recent), order=True, expensive=persona == "high_spender")
                spent += session[-1]["properties"]["revenue"]
                signature.append(session)
                orders -= 1
        elif persona == "reader":
            for _ in range(rng.randint(2, 5)):
                signature.append(self.email(p, self.moment(days_back=45)))
        # Signature sessions are kept whole even past the budget, so the total is approximate
        # when the budget is tiny; at demo size it almost never is.
        events = [e for session in signature for e in session]
        while len(events) < budget:
            roll = rng.random()
            at = self.moment(days_back=90)
            if roll < 0.15 and persona != "visitor":
                session = self.email(p, at)
            elif roll < 0.25 and persona not in ("visitor", "browser"):
                session = self.cart(p, at, order=False)
            else:
                session = self.browse(p, at, products=rng.choice([0, 0, 1, 2]))
            events.extend(session[: budget - len(events)])
        return events


def _budgets(rng: random.Random, personas: list[str], total: int) -> list[int]:
    """Each customer's share of `total` events (largest remainder, so they sum to `total`)."""
    weights = [PERSONAS[p][1] * (0.3 + rng.random() * 1.4) for p in personas]
    scale = total / (sum(weights) or 1)
    raw = [w * scale for w in weights]
    budgets = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (budgets[i] - raw[i], i))
    for i in order[: total - sum(budgets)]:
        budgets[i] += 1
    return budgets


def demo_seed(*, seed: int, now: dt.datetime, customers: int = 5000, events: int = 200_000) -> DemoSummary:
    """Create demo sources, attributes, tags, customers and events in one transaction."""
    gen = _Generator(seed=seed, now=now)
    rng = gen.rng
    summary = DemoSummary(customers=customers)
    with transaction.atomic():
        for name in SOURCES:
            key = "".join(rng.choice("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(32))
            gen.sources[name], _ = Source.objects.get_or_create(name=name, defaults={"write_key": key})
        summary.sources = len(SOURCES)
        for key, type_, description in CUSTOM_ATTRIBUTES:
            attribute_register(key=key, type_=type_, description=description)
        tags = {}
        for name in TAGS:
            tags[name] = Tag.objects.filter(name__iexact=name).first() or Tag.objects.create(name=name)
        summary.tags = len(tags)

        persona_names = [gen.weighted({k: v[0] for k, v in PERSONAS.items()}) for _ in range(customers)]
        budgets = _budgets(rng, persona_names, events)
        for start in range(0, customers, BATCH):
            _seed_batch(gen, summary, tags, range(start, min(start + BATCH, customers)), persona_names, budgets)
    for name in persona_names:
        summary.personas[name] = summary.personas.get(name, 0) + 1
    return summary


def _seed_batch(gen: _Generator, summary: DemoSummary, tags: dict, indexes, personas, budgets) -> None:
    rows, profiles, event_lists = [], [], []
    for i in indexes:
        p = gen.profile(i, personas[i])
        evs = sorted(gen.events_for(p, budgets[i]) if budgets[i] else [], key=lambda e: e["timestamp"])
        if evs:
            first, last = evs[0]["timestamp"], evs[-1]["timestamp"]
            created = first
        else:
            first = last = None
            created = gen.now - dt.timedelta(days=gen.rng.randrange(91, 700), seconds=gen.rng.randrange(86400))
        rows.append(Customer(**p["fields"], custom=p["custom"], created_at=created, updated_at=created,
                             first_seen_at=first, last_seen_at=last))  # fmt: skip
        profiles.append(p)
        event_lists.append(evs)
    created_rows = Customer.objects.bulk_create(rows, batch_size=500)
    identities, links, event_rows = [], [], []
    for customer, p, evs in zip(created_rows, profiles, event_lists, strict=True):
        if customer.external_id:
            summary.identified += 1
        else:
            summary.anonymous += 1
        if p["anonymous_id"]:
            identities.append(CustomerIdentity(customer=customer, kind="anonymous", value=p["anonymous_id"]))
        links += [Customer.tags.through(customer_id=customer.pk, tag_id=tags[t].pk) for t in p["tags"]]
        for e in evs:
            e["source"] = gen.sources[e["source"]].pk
            event_rows.append({"customer": customer.pk, **e})
            if e["name"] == "Order Completed":
                summary.orders += 1
                summary.revenue += e["properties"]["revenue"]
    CustomerIdentity.objects.bulk_create(identities, batch_size=1000)
    Customer.tags.through.objects.bulk_create(links, batch_size=1000)
    _insert(Event, event_rows)
    summary.events += len(event_rows)


def _insert(model, rows: list[dict]) -> None:
    """Write the demo events fast: COPY on PostgreSQL, multi-row INSERT ... VALUES on SQLite.

    bulk_create spends most of its time in per-field get_db_prep_save (measured: 2.5 s per
    20,000 events on SQLite against 1.0 s here), and on PostgreSQL one statement per row or per
    500 rows was measured at 190-230 s for the demo (client-side parameter merging and round
    trips on a busy server), either of which would push `make run` past a minute.
    """
    if not rows:
        return
    fields = [model._meta.get_field(name) for name in rows[0]]
    ops = connection.ops
    columns = ", ".join(ops.quote_name(f.column) for f in fields)
    table = ops.quote_name(model._meta.db_table)
    is_json = [isinstance(f, models.JSONField) for f in fields]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([json.dumps(v) if j else v for j, v in zip(is_json, row.values(), strict=True)])
        return
    adapters = []
    for field, j in zip(fields, is_json, strict=True):
        if isinstance(field, models.DateTimeField):
            adapters.append(ops.adapt_datetimefield_value)
        elif j:
            adapters.append(lambda value: ops.adapt_json_value(value, None))
        else:
            adapters.append(None)
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    per_statement = 500  # 8 columns x 500 rows stays far below SQLite's 32,766 parameters
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            params = [a(v) if a else v for row in chunk for a, v in zip(adapters, row.values(), strict=True)]
            cursor.execute(f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([row_sql] * len(chunk)), params)
