"""Test helpers: real peers (a Mosquitto broker, PostgreSQL) and fresh interpreters started by the
tests."""
