"""Faults and abuse (issue 12): each numbered story reproduced against the real server
over loopback, with the fixed behaviour asserted."""
