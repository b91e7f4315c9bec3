"""Domain logic behind the routes: plain classes, testable without HTTP."""
