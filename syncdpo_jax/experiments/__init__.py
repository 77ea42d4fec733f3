"""Experiments built from the library: the SyncDPO reproduction (`reproduce`)."""
