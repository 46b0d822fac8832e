"""Shared test helpers: waiting on conditions, helper scripts run as real processes."""
