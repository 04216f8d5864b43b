"""Kafka: topic names and headers, clients, the consumer loop, the transactional outbox and its
relay, and the embedded broker ``gallring up`` runs."""
