"""Faults and abuse against the real server over loopback (issue 12's stories)."""
