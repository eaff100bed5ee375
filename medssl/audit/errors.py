"""The error of the audit package."""


class AuditError(ValueError):
    """A run record, lock file or workspace that cannot be audited."""
