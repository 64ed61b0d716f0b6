"""Tests of the reference server (reference_server/)."""
