"""Embedded services (Valkey broker, Elasticsearch node) run as child processes on loopback."""
