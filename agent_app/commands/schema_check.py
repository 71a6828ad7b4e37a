async def schema_check() -> None:
    """Placeholder."""
