"""Recipients' webhooks, for the API that registers them and the notifier that calls them:
which URLs may be called, and the signing secrets kept sealed."""
