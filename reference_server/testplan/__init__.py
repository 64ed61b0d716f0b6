"""The customer's test plan, executable: simulated devices,
the server, a signature-checking webhook receiver, and a report of every plan item."""
