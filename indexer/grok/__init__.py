"""Grok: Logstash-compatible pattern engine and library."""
