"""The labs, shipped inside the package as checker.labs (see pyproject.toml)."""
