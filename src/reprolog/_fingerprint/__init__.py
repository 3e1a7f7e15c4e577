"""Fingerprints: content hashes of data (`fingerprint`) and of training steps (`StepFingerprints`).

Imports only the storage and capture layers below it.
"""
