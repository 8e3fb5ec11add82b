"""The shop's own settings: a config.py like many Flask apps have (Centinela never imports it)."""
import os

SECRET_KEY = os.environ.get("SHOP_SECRET_KEY", "change-me")
# The shop takes uploads of up to 10 MiB on its own routes; Centinela's body limit is its own.
MAX_CONTENT_LENGTH = 10 * 1024 * 1024
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "https://api.stripe.com")
STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY", "")
