from django.core.management.base import BaseCommand, CommandError

from customers.models import Source


class Command(BaseCommand):
    help = "Create a tracking source and print its write key."

    def add_arguments(self, parser):
        parser.add_argument("name", help="A name for the website, app or backend that sends events.")

    def handle(self, *args, name, **options):
        name = name.strip()
        if not name:
            raise CommandError("The source needs a name.")
        source = Source.objects.create(name=name)
        # Only the key goes to stdout so scripts can capture it: KEY=$(manage.py create_source web)
        self.stdout.write(source.write_key)
