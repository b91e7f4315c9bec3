"""The platform's core: settings, logging and the error tree. Every layer imports it; it imports none of them
(gateway -> jobs -> engines -> core)."""
