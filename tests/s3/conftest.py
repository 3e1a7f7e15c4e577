"""Tests against a real S3 API on loopback (moto's server): the fixtures of `tests._s3`."""

from tests._s3 import moto_server, s3

__all__ = ["moto_server", "s3"]
