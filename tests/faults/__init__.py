"""Faults and abuse: each numbered story of the trust issue reproduced against the real
server over loopback, with the fixed behaviour asserted."""
