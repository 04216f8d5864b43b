"""The purger: keeps the retention clocks and executes the erasures that fall due."""
