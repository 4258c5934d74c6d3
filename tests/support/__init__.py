"""Test helpers: real peers (a Mosquitto broker) started by the tests."""
