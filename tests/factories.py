import datetime as dt

import factory
from django.utils import timezone

from customers.models import Customer, Event, Source, Tag


class SourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Source

    name = factory.Sequence(lambda n: f"Source {n}")


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"tag{n}")


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer
        skip_postgeneration_save = True

    external_id = factory.Sequence(lambda n: f"user-{n}")
    email = factory.Sequence(lambda n: f"user{n}@example.com")
    country = "PL"
    custom = factory.LazyFunction(dict)

    @factory.post_generation
    def tags(self, create, extracted, **kwargs):
        if create and extracted:
            from customers.services import tags_get_or_create

            self.tags.set(tags_get_or_create(extracted))


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    customer = factory.SubFactory(CustomerFactory)
    name = "Page Viewed"
    timestamp = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=1))
    received_at = factory.LazyAttribute(lambda o: o.timestamp)
    properties = factory.LazyFunction(dict)
    context = factory.LazyFunction(dict)
