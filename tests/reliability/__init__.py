"""Reliability and security proofs for DESIGN.md's promises (issue 8).

Scaled-down here; bench/campaign.py runs the same machinery at full size.
"""
