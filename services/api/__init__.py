"""The API service: upstream systems POST lifecycle events here (the only HTTP edge)."""
