"""Faults and abuse (issue 12): each numbered story against the real server over loopback."""
