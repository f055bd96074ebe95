"""`manage.py bootstrap_admin`: the first superuser, with a random password printed once."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create the superuser `admin` with a random password, printed once, unless a superuser exists."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            # Never print or reset a password here: `make run` calls this on every start.
            self.stdout.write("admin user exists")
            return
        if User.objects.filter(username=username).exists():
            # Never promote an existing account silently.
            raise CommandError(f"A user named {username} exists but is not a superuser; use --username.")
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(
            self.style.SUCCESS("Created the admin user.")
            + f"\n  username: {username}\n  password: {password}\n"
            + "This password is shown only once; change it in the admin (top right, “Change password”)."
        )
