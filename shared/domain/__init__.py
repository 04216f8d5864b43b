"""What Gallring knows of retention, with no input or output: the event contract, the policy,
the pure retention engine, and the pseudonyms and identity numbers that keep personal data out."""
