"""The notifier: tells every recipient of erased data, through signed deletion webhooks."""
