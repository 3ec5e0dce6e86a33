"""Reliability and security proofs for docs/design.md's promises (issue 8).

Scaled-down here; bench/campaign.py runs the same machinery at full size.
"""
