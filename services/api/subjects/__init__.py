"""``/v1/subjects``: what Gallring holds about one subject, asked without an id in the URL."""
