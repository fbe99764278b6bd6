"""The simulator: any profile's console impersonated on a pseudo-terminal."""
