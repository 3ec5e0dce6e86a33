"""kioskctl: the shop owner's (and a hub developer's) side of the protocol."""
