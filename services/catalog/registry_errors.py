"""Errors of the schema registry, each with the Confluent error code clients act on."""

from __future__ import annotations


class RegistryError(Exception):
    """A registry request that cannot be served; error_code is the Confluent code."""

    error_code = 50001

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def http_status(self) -> int:
        # Confluent codes are the HTTP status plus two digits, except a bare 409.
        return self.error_code if self.error_code < 1000 else self.error_code // 100


class SubjectNotFoundError(RegistryError):
    error_code = 40401


class VersionNotFoundError(RegistryError):
    error_code = 40402


class SchemaNotFoundError(RegistryError):
    error_code = 40403


class SubjectSoftDeletedError(RegistryError):
    error_code = 40404


class SubjectNotSoftDeletedError(RegistryError):
    error_code = 40405


class SubjectConfigNotFoundError(RegistryError):
    error_code = 40408


class IncompatibleSchemaError(RegistryError):
    error_code = 409


class InvalidSchemaError(RegistryError):
    error_code = 42201


class InvalidVersionError(RegistryError):
    error_code = 42202


class InvalidCompatibilityError(RegistryError):
    error_code = 42203
