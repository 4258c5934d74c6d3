"""Tests of the tamper-evident ledger."""
