"""Static pages shipped with roomcast."""

__all__: list[str] = []
